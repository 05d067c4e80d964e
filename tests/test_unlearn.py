"""Pre-training, gradient ascent, selection, divergence, resume: end to end on a tiny model."""

import math

import pytest
import torch

import llmunlearn as ul
from llmunlearn.core import nll_loss
from llmunlearn.unlearning.methods import METHODS, register
from llmunlearn.config import profile_config
from llmunlearn.models import build_model, load_model, n_params
from llmunlearn.training.loop import TrainConfig, train


def test_ga_loss_is_minus_the_models_own_loss(tiny):
    model = build_model(tiny.model, 40, seed=0)
    ids = torch.randint(2, 40, (2, 12))
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    torch.testing.assert_close(ul.get_method("ga").loss(model, {"forget": b}), -model(**b).loss)


def test_pretrain_then_gradient_ascent_raises_forget_perplexity(tiny):
    original = ul.pretrain(tiny, progress=False)
    assert original.done and original.summary["tokens"] > 0
    run = ul.unlearn(tiny, "github", "ga", lr=1e-2, original=original, progress=False)
    s = run.summary
    assert s["status"] == "finished"
    assert [e["step"] for e in s["evals"]] == [0, 2, 4]
    forget = [e["ppl_forget"] for e in s["evals"]]
    assert forget == sorted(forget) and forget[-1] > 1.3 * forget[0], forget
    assert s["target"] == s["evals"][0]["ppl_approximate"]
    assert (run.path / "model" / "model.safetensors").exists()
    frame = ul.trajectory_frame([run])
    assert len(frame) == 3 and frame["selected"].sum() == 1
    # a finished run is reused, not recomputed
    mtime = (run.path / "summary.json").stat().st_mtime
    again = ul.unlearn(tiny, "github", "ga", lr=1e-2, original=original, progress=False)
    assert again.path == run.path and (run.path / "summary.json").stat().st_mtime == mtime


def test_selection_rule():
    evals = [
        {"step": 0, "ppl_forget": 10},
        {"step": 2, "ppl_forget": 15},
        {"step": 4, "ppl_forget": 25},
        {"step": 6, "ppl_forget": 40},
    ]
    assert ul.select_step(evals, 20) == {**evals[2], "reached_target": True}
    assert ul.select_step(evals, 99) == {**evals[3], "reached_target": False}


def test_a_diverging_method_is_recorded_as_diverged(tiny):
    @register("nan_for_test")
    def nan_loss(model, batches, ref=None, hp=None):
        """Returns NaN: a stand-in for a method that blows up."""
        return nll_loss(model, batches["forget"]) * float("nan")

    try:
        run = ul.unlearn(tiny, "github", "nan_for_test", progress=False)
    finally:
        METHODS.pop("nan_for_test")
    assert run.done and run.summary["status"] == "diverged"
    assert not (run.path / "model").exists()
    assert not math.isfinite(run.summary["log"][-1]["loss"])


def test_bad_learning_rate_is_named(tiny):
    with pytest.raises(ValueError, match="learning rate.*-1"):
        ul.unlearn(tiny, "github", "ga", lr=-1.0, progress=False)


def _stream(tiny, docs):
    from llmunlearn.data.corpus import chunk_documents
    from llmunlearn.models import train_tokenizer

    tok = train_tokenizer([d.text for d in docs], 200)
    return len(tok), chunk_documents(tok, docs, 16)


def test_interrupted_training_resumes_to_the_same_weights(tiny, docs, tmp_path):
    vocab, ds = _stream(tiny, docs)
    cfg = TrainConfig(steps=6, lr=1e-2, batch=4, micro_batch=2, checkpoint_every=2)
    loss = lambda m, b: nll_loss(m, b["train"])  # noqa: E731

    straight = train(
        build_model(tiny.model, vocab, 0), loss, {"train": ds}, cfg, tmp_path / "a", progress=False
    )

    def crash(model, step, save):
        if step == 5:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(
            build_model(tiny.model, vocab, 0),
            loss,
            {"train": ds},
            cfg,
            tmp_path / "b",
            on_eval=crash,
            eval_every=5,
            progress=False,
        )
    resumed = train(
        build_model(tiny.model, vocab, 0), loss, {"train": ds}, cfg, tmp_path / "b", progress=False
    )
    assert resumed["log"][0]["step"] == 1 and len(resumed["log"]) == 6
    for (n, p), q in zip(straight["model"].named_parameters(), resumed["model"].parameters()):
        torch.testing.assert_close(p, q, msg=n)
    assert [r["loss"] for r in straight["log"]] == pytest.approx(
        [r["loss"] for r in resumed["log"]], rel=1e-5
    )


def test_a_base_model_is_the_original_and_nothing_is_pretrained(tiny):
    """The paper's setting (a pre-trained LLM, no retrained model), on a local folder of
    the same layout as a hub checkpoint."""
    folder = ul.pretrain(tiny, progress=False).path / "model"
    base = tiny.replace(name="base", base_model=str(folder))
    assert "base_model" not in profile_config(tiny)["model"]
    assert profile_config(base)["model"]["base_model"]
    zoo = ul.pretrain_zoo(base, progress=False)
    assert set(zoo) == {"original"}
    assert (zoo["original"].path / "model").resolve() == folder.resolve()
    assert zoo["original"].summary["n_params"] == n_params(load_model(folder)[0])
    with pytest.raises(ValueError, match="no retrained model"):
        ul.pretrain(base, without="books")
    run = ul.unlearn(base, "books", "ga_kl_in", steps=2, progress=False)
    assert run.summary["status"] == "finished"
    res = ul.evaluate_folder(base, "books", run.path / "selected", intervals=False).summary
    assert "to_retrained" not in res and "reference:original" in res["mia"]
    models = ul.domain_models(base, "books", methods=["ga_kl_in"], steps=2)
    assert set(models) == {"original", "ga_kl_in"}


def test_the_unlearning_seed_changes_data_order_and_labels_not_the_original(tiny):
    a = ul.unlearn(tiny, "github", "random_label", steps=2, progress=False)
    b = ul.unlearn(tiny, "github", "random_label", steps=2, seed=7, progress=False)
    assert a.path != b.path and a.config["original"] == b.config["original"]
    assert b.config["train"]["seed"] == 7 and a.config["train"]["seed"] == tiny.seed
    assert a.summary["log"][0]["loss"] != b.summary["log"][0]["loss"]
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        ul.unlearn(tiny, "github", "ga", seed=-1, progress=False)


def test_the_same_profile_and_seed_give_bitwise_identical_numbers(tiny, tmp_path, monkeypatch):
    # Two builds from nothing in separate homes, one process, CPU: the zoo's perplexities,
    # the unlearning trajectory and the full evaluation agree exactly (torch's CPU kernels
    # are deterministic for a fixed thread count; nothing here samples without a seed)
    def build(home):
        monkeypatch.setenv("LLMUNLEARN_HOME", str(home))
        zoo = ul.pretrain_zoo(tiny, progress=False)
        run = ul.unlearn(tiny, "books", "npo", original=zoo["original"], progress=False)
        ev = ul.evaluate_folder(tiny, "books", run.path / "selected", zoo).summary
        return zoo["original"].summary["ppl"], run.summary["evals"], ev, run

    first, second = build(tmp_path / "a"), build(tmp_path / "b")
    for a, b in zip(first[:3], second[:3]):
        assert a == b
    record = second[3].provenance
    assert second[3].config["train"]["seed"] == tiny.seed
    assert {
        "device",
        "compute_dtype",
        "processes",
        "torch_threads",
        "git_revision",
        "versions",
    } <= set(record)


LARGEST_LR = 1.0
"""Far above any learning rate the book uses (smoke 1e-3, cpu 2e-4): every method blows up
or saturates here."""


@pytest.mark.parametrize("domain", ul.DOMAINS)
def test_every_method_at_a_huge_learning_rate_ends_finished_or_diverged(tiny, domain):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    runs = ul.unlearn_all(tiny, domain, lr=LARGEST_LR, original=zoo["original"], progress=False)
    for method, run in runs.items():
        s = run.summary
        assert run.done and s["status"] in ("finished", "diverged"), method
        if s["status"] == "diverged":  # recorded, with no model to select
            assert not (run.path / "model").exists(), method
    # the evaluation of the domain takes the finished ones and leaves the diverged out
    models = ul.domain_models(tiny, domain, zoo, lr=LARGEST_LR, progress=False)
    assert {m for m, r in runs.items() if r.summary["status"] == "finished"} == set(models) - {
        "original",
        "retrained",
    }


def test_per_method_hyper_parameters_reach_only_their_method(tiny):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    runs = ul.unlearn_all(
        tiny,
        "books",
        ["npo", "ga_gd_in"],
        steps=2,
        original=zoo["original"],
        hparams={"npo": {"beta": 0.5}},
        progress=False,
    )
    assert runs["npo"].config["hparams"] == {"beta": 0.5}
    assert runs["ga_gd_in"].config["hparams"] == {"lambda": 1.0}
    again = ul.unlearn(
        tiny,
        "books",
        "ga_gd_in",
        steps=2,
        original=zoo["original"],
        hparams={"lambda": 1},
        progress=False,
    )  # 1 and 1.0: the same run
    assert again.path == runs["ga_gd_in"].path


def test_editing_a_method_file_changes_its_runs_keys_and_no_others(tiny, monkeypatch):
    """The run cache knows the code (issue 37): an edit to npo.py gives NPO's runs (and
    npo_gd's, defined in the same file) new keys; every other method keeps its runs."""
    import llmunlearn.unlearning.methods as methods
    from llmunlearn import stages
    from llmunlearn.unlearning.runner import unlearning_inputs, unlearning_run

    inputs = unlearning_inputs(tiny, "books")

    def keys():
        return {m: unlearning_run(inputs, m, plan_only=True).path.name for m in methods.METHODS}

    before = keys()
    real = stages.read_source

    def edited(addition):
        return lambda path: real(path) + (addition if str(path).endswith("npo.py") else "")

    # a comment or a docstring is prose, not code: no run changes
    monkeypatch.setattr(stages, "read_source", edited('\n# edited\ndef _f():\n    "doc"\n'))
    prose = keys()
    monkeypatch.setattr(stages, "read_source", edited('\n# edited\ndef _f():\n    "other doc"\n'))
    assert keys() == prose
    monkeypatch.setattr(stages, "read_source", edited("\nEDITED = 1\n"))
    after = keys()
    changed = {m for m in before if before[m] != after[m]}
    assert changed == {m for m, s in methods.METHODS.items() if s.loss.__module__.endswith(".npo")}
    assert "npo" in changed and "ga" not in changed
