"""``llmunlearn plan``: every stage's tokens, FLOPs, memory and time from the profile's
sizes, before anything runs."""

import pytest

import llmunlearn as ul
from llmunlearn.runs import write_json
from llmunlearn.studies.plan import DEVICES, measured, plan


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "paper"])
def test_the_plan_covers_every_stage_and_writes_nothing(name):
    frame = plan(ul.get_profile(name))
    total = frame.loc["book (stages above)"]
    stages = frame.drop(index="book (stages above)")
    assert (stages[["tokens", "FLOPs", "hours"]] >= 0).all().all()
    assert total["FLOPs"] == pytest.approx(stages["FLOPs"].sum())
    assert total["hours"] == pytest.approx(stages["hours"].sum())
    assert frame.attrs["n_params"] > 0
    assert not (ul.home() / "pretrain").exists()  # nothing trained, nothing fetched


def test_the_plan_scales_with_the_device_and_the_utilisation():
    p = ul.get_profile("gpu")
    a, b = plan(p, "H100", 0.3), plan(p, "A100", 0.3)
    ratio = DEVICES["H100"] / DEVICES["A100"]
    assert b.loc["book (stages above)", "hours"] == pytest.approx(
        ratio * a.loc["book (stages above)", "hours"]
    )
    assert plan(p, "H100", 0.15).loc["book (stages above)", "hours"] == pytest.approx(
        2 * a.loc["book (stages above)", "hours"]
    )
    # a base's FLOPs are 6 N per trained token
    base = a.loc["pre-training: bases"]
    assert base["FLOPs"] == pytest.approx(6 * a.attrs["n_params"] * base["tokens"])


@pytest.mark.parametrize(
    "device, utilisation, message",
    [
        ("TPU", 0.3, "unknown device 'TPU'; known: H100"),
        ("H100", 0, r"\(0, 1\]"),
        ("H100", 1.5, r"\(0, 1\]"),
    ],
)
def test_a_bad_device_or_utilisation_is_named(device, utilisation, message):
    with pytest.raises(ValueError, match=message):
        plan(ul.get_profile("cpu"), device, utilisation)


def test_no_profile_evaluates_or_checkpoints_a_run_beyond_its_bound():
    """Per unlearning run, on every profile: at most 8 evaluated steps after step 0, no
    more checkpoints than evaluations (a checkpoint is written only at an evaluated step),
    and, where the model is not ours (a base model on its own data), fixed samples of at
    most 1,024 chunks per evaluated split besides the forget set."""
    from llmunlearn.config import PROFILES
    from llmunlearn.unlearning.runner import eval_points

    for name, p in PROFILES.items():
        steps = p.unlearn_steps
        points = eval_points(p.unlearning, steps)
        assert len(points) <= 8, (name, points)
        every = 0 if p.grid_eval_steps else p.eval_every  # the runner's checkpoint_every
        checkpoints = [s for s in range(1, steps) if every and s % every == 0]
        assert set(checkpoints) <= set(points), (name, checkpoints, points)
        if p.base_model:
            assert p.eval_chunks <= 1024 and p.membership_chunks <= 1024, name


def test_the_plan_is_held_against_the_profiles_own_finished_runs(tiny):
    with pytest.raises(ValueError, match="no finished pre-training or unlearning run of profile"):
        measured(tiny)
    run = ul.unlearn(tiny, "books", "ga", progress=False)
    foreign = ul.home() / "pretrain" / "other-base-s42-0"  # another profile's run
    write_json(foreign / "summary.json", {"tokens": 10**9, "flops": 1e18, "wall_s": 3600.0})
    (foreign / "DONE").touch()
    frame = measured(tiny, "cpu-2core", 0.3)
    bases = [
        r for r in (ul.home() / "pretrain").glob(f"{tiny.name}-base-*") if (r / "DONE").exists()
    ]
    assert frame.loc["pretraining bases", "measured runs"] == len(bases) > 0
    assert frame.loc["unlearning", "measured runs"] == 1
    assert frame.loc["unlearning", "measured tokens"] == run.summary["tokens"] > 0
    assert frame.loc["unlearning", "measured hours"] == pytest.approx(run.summary["wall_s"] / 3600)
    matched = frame["plan matches at"]
    assert (matched > 0).all()
    assert matched.to_numpy() == pytest.approx(
        (0.3 * frame["planned hours"] / frame["measured hours"]).to_numpy()
    )
