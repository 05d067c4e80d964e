"""The ground truth and the defects that changed numbers: each test checks the property
(what the reader's number depends on), and each failed before its fix."""

import math

import datasets
import pytest
import torch

import llmunlearn as ul
from llmunlearn.core import nll_loss
from llmunlearn.evaluation import mia_sets
from llmunlearn.models import build_model
from llmunlearn.training.loop import TrainConfig, lr_factor, plan_batch, train, training_flops


def _chunks(n: int):
    ids = [[i + 2] * 8 for i in range(n)]
    return datasets.Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * 8] * n, "labels": ids}
    )


def test_members_and_non_members_are_cut_by_a_seeded_sample_not_by_position():
    forget, approx = _chunks(40), _chunks(10)
    members, non_members = mia_sets({"forget": forget, "approximate": approx}, seed=3)
    assert len(members) == len(non_members) == 10
    firsts = [r[0] for r in members["input_ids"]]
    assert firsts != [r[0] for r in forget.select(range(10))["input_ids"]]
    assert max(firsts) > 20  # drawn across the whole set, not its first documents
    again, _ = mia_sets({"forget": forget, "approximate": approx}, seed=3)
    assert [r[0] for r in again["input_ids"]] == firsts


def test_every_optimiser_step_trains():
    """The official warmup of one step from 0 makes the first update a no-op."""
    for steps in (1, 2, 6, 30, 400):
        warmup = max(1, math.ceil(0.03 * steps))
        factors = [lr_factor(s, steps, warmup) for s in range(steps)]
        assert all(f > 0 for f in factors), (steps, factors)
        assert max(factors) == pytest.approx(1.0)


def test_the_first_step_changes_the_weights_and_the_log_shows_its_rate(tiny, docs, tmp_path):
    from llmunlearn.data.corpus import chunk_documents
    from llmunlearn.models import train_tokenizer

    tok = train_tokenizer([d.text for d in docs], 200)
    ds = chunk_documents(tok, docs, 16)
    model = build_model(tiny.model, len(tok), 0)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=1, lr=1e-2, batch=4, micro_batch=4)
    out = train(
        model,
        lambda m, b: nll_loss(m, b["train"]),
        {"train": ds},
        cfg,
        tmp_path / "run",
        progress=False,
    )
    assert out["log"][0]["lr"] == pytest.approx(1e-2)
    assert any(not torch.equal(a, b) for a, b in zip(before, out["model"].parameters()))


def test_a_batch_that_does_not_divide_across_processes_is_rounded_up():
    assert plan_batch(480, 8, 1) == (1, 60, 480)  # the paper's arXiv runs
    assert plan_batch(680, 8, 1) == (1, 85, 680)  # and GitHub's
    micro, accum, effective = plan_batch(480, 7, 1)
    assert effective >= 480 and effective % 7 == 0 and effective == micro * accum * 7
    assert plan_batch(8, 1, 8) == (8, 1, 8)
    with pytest.raises(ValueError, match="batch"):
        plan_batch(0, 1, 1)


def test_the_paper_profile_runs_the_official_batch_for_one_epoch():
    p = ul.get_profile("paper")
    assert p.batch_for("arxiv") == 480 and p.batch_for("github") == 680
    assert p.unlearn_epochs == 1.0 and p.unlearn_micro_batch == 1


def test_flops_count_adversarial_labelling_and_sophia_hessian_passes(tiny):
    adv = ul.unlearn(tiny, "github", "adversarial", steps=2, progress=False).summary
    ga = ul.unlearn(tiny, "github", "ga", steps=2, progress=False).summary
    original = ul.pretrain(tiny, progress=False)
    n = original.summary["n_params"]
    assert adv["tokens"] == ga["tokens"]
    assert adv["flops"] > ga["flops"] == 6 * n * ga["tokens"]  # the labelling pass counts
    sophia = ul.unlearn(tiny, "github", "ga", steps=2, optimizer="sophia", progress=False).summary
    assert sophia["hessian_tokens"] > 0
    assert sophia["flops"] == training_flops(
        n, sophia["tokens"], hessian_tokens=sophia["hessian_tokens"]
    )
    assert sophia["flops"] > ga["flops"]


def test_sophia_hessian_covers_every_stream_of_the_step(tiny):
    """SophiaG's batch-size term counts forget and retain tokens: the Hessian estimate
    must cover the same tokens (it covered the forget stream alone)."""
    run = ul.unlearn(
        tiny, "github", "ga_gd_in", steps=2, optimizer="sophia", progress=False
    ).summary
    first_step_tokens = run["log"][0]["tokens"]  # forget + retain chunks of step 1
    assert run["hessian_tokens"] == first_step_tokens  # one estimate, at step 1


def test_an_interrupted_unlearning_run_resumes_without_step_0(tiny, monkeypatch):
    """Resuming must not depend on step 0 having run in the same process."""
    import llmunlearn.unlearning.runner as unlearning

    straight = ul.unlearn(tiny, "github", "ga", lr=5e-3, steps=4, progress=False).summary
    real, calls = unlearning.evaluation_row, []

    def crash_at_step_4(model, sets, seed):
        calls.append(1)
        if len(calls) == 2:  # evaluations: step 2, then step 4
            raise KeyboardInterrupt
        return real(model, sets, seed)

    other = dict(hparams=None)
    monkeypatch.setattr(unlearning, "evaluation_row", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        ul.unlearn(tiny, "github", "ga", lr=5.0001e-3, steps=4, progress=False, **other)
    monkeypatch.setattr(unlearning, "evaluation_row", real)
    resumed = ul.unlearn(tiny, "github", "ga", lr=5.0001e-3, steps=4, progress=False).summary
    assert [e["step"] for e in resumed["evals"]] == [0, 2, 4]
    assert resumed["target"] == straight["target"]
    assert len(resumed["log"]) == 4


def test_the_retrained_model_never_trains_on_a_forget_token_of_its_design(tiny, monkeypatch):
    """Checked on what the training loop is fed: every chunk the retrained model for
    (books, design) trains on, against the token sequences of that design's forget set;
    the original model trains on all of them."""

    import llmunlearn.training.pretraining as pretraining
    from llmunlearn.data.corpus import chunk_documents, forget_documents

    fed = {}
    real_train = pretraining.train

    def spy(model, loss, streams, cfg, run_dir, *, orders, **kw):
        used = orders["train"][: cfg.steps * cfg.batch]
        fed[run_dir.name] = {tuple(streams["train"][i]["input_ids"].tolist()) for i in used}
        return real_train(model, loss, streams, cfg, run_dir, orders=orders, **kw)

    monkeypatch.setattr(pretraining, "train", spy)
    original = ul.pretrain(tiny, progress=False)
    tok = pretraining.pretraining_tokenizer(tiny)
    for design in ul.DESIGNS:
        p = tiny.replace(design=design)
        forget = {
            tuple(r.tolist())
            for r in chunk_documents(tok, forget_documents(p, "books", design), p.chunk_len)[
                "input_ids"
            ]
        }
        retrained = ul.pretrain(p, without="books", progress=False)
        assert not fed[retrained.path.name] & forget
        assert forget <= fed[original.path.name]
        # its forget chunks replaced by replayed ones: as many steps as the original
        assert tiny.forget_insertion == "replace"
        assert retrained.summary["steps"] == original.summary["steps"]
        assert retrained.summary["tokens"] > 0


def test_retraining_check_reports_r_auc_and_seed_noise(tiny):
    check = ul.retraining_check(tiny, "books", "matched")
    assert check["R"] == pytest.approx(
        check["ppl"]["retrained"]["forget"] / check["ppl"]["original"]["approximate"]
    )
    assert check["R_low"] <= check["R"] <= check["R_high"]
    for model in ("original", "retrained", "original-seed2"):
        for attack in ("loss", "min_k@0.3"):
            a = check["auc"][model][attack]
            assert 0 <= a["ci_low"] <= a["auc"] <= a["ci_high"] <= 1
    assert check["verdict"].startswith("On books (matched design) the stand-in")
    both = tiny.replace(retrained_designs=ul.DESIGNS)
    table = ul.ground_truth_table(both)
    assert len(table) == 6 and set(table.index.get_level_values("design")) == {"matched", "shifted"}


def test_a_profile_without_the_shifted_retrained_models_never_trains_them(tiny, isolated_home):
    """cpu's retrained_designs: the shifted design's originals are still measured (its
    memorisation gap, the blind baseline's attack AUC, the same numbers as with its
    retrained models), but no model is trained without a shifted forget set."""
    matched_only = tiny.replace(retrained_designs=("matched",))
    zoo = ul.full_zoo(matched_only, progress=False)
    assert sorted(zoo) == sorted(
        ["original", "original-seed2", *(f"retrained-{d}-matched" for d in ul.DOMAINS)]
    )
    blind = ul.blind_baseline_table(matched_only)
    assert len(ul.ground_truth_table(matched_only)) == 3
    assert not list((isolated_home / "pretrain").glob("*-shifted-*"))
    gaps = ul.memorisation_gaps(zoo)
    shifted = gaps.xs("shifted", level="design")
    assert shifted["original: approximate / forget"].notna().all()
    assert shifted["retrained: approximate / forget"].isna().all()
    both = tiny.replace(retrained_designs=ul.DESIGNS)
    for d in ul.DOMAINS:
        measured = ul.retraining_check(both, d, "shifted")["auc"]["original"]["min_k@0.3"]
        assert blind.loc[(d, "shifted"), "Min-K% AUC (original)"] == pytest.approx(measured["auc"])
    assert list((isolated_home / "pretrain").glob("*-shifted-*"))  # the check trains them


def test_verdict_follows_the_stated_rule():
    from llmunlearn.studies.retraining import verdict

    base = {
        "domain": "books",
        "design": "shifted",
        "R_seed": 1.02,
        "auc": {"retrained": {"min_k@0.3": {"auc": 0.2, "ci_low": 0.1, "ci_high": 0.3}}},
    }
    miss = verdict({**base, "R": 1.9, "R_low": 1.7, "R_high": 2.1})
    assert "misses" in miss and "90% above" in miss and "away from 0.5" in miss
    hold = verdict({**base, "R": 1.05, "R_low": 1.01, "R_high": 1.09})
    assert "holds" in hold
    # an equivalence rule: an interval that contains 1 but leaves the band is no evidence
    wide = verdict({**base, "R": 1.02, "R_low": 0.7, "R_high": 1.5})
    assert "undetermined" in wide and "holds" not in wide


def test_r_factors_into_set_difference_times_lost_training_data():
    from llmunlearn.studies.retraining import factors

    check = {
        "ppl": {
            "retrained": {"forget": 30.0, "approximate": 24.0},
            "original": {"approximate": 20.0},
        }
    }
    f = factors(check)
    assert f["retrained_forget_over_approximate"] == pytest.approx(1.25)
    assert f["retrained_over_original_approximate"] == pytest.approx(1.2)
    assert f["retrained_forget_over_approximate"] * f[
        "retrained_over_original_approximate"
    ] == pytest.approx(30.0 / 20.0)


def test_an_epoch_of_unlearning_is_the_forget_chunks_over_the_batch(tiny):
    from llmunlearn.data.corpus import chunk_documents, load_splits

    p = tiny.replace(unlearn_epochs=1.0, unlearn_batch=4)
    run = ul.unlearn(p, "github", "ga", progress=False)
    tok = ul.load_original(ul.pretrain(p, progress=False))[1]
    n = len(chunk_documents(tok, load_splits("github", p)["forget"], p.chunk_len))
    assert run.config["train"]["steps"] == max(1, n // 4)
