"""Every metric against an independent computation."""

import zlib

import datasets
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import llmunlearn as ul
from llmunlearn.measurement.distance import kl_to
from llmunlearn.measurement.memorisation import (
    exact_match_length,
    rouge_l_f1,
    verbatim_memorisation,
)
from llmunlearn.measurement.utility import multiple_choice_items, multiple_choice_scores
from llmunlearn.measurement.mia import attack_scores, auc, auc_interval, chunk_token_stats, min_k
from llmunlearn.models import build_model


def test_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    m = np.round(rng.normal(0.3, 1, 50), 1)  # rounding creates ties
    n = np.round(rng.normal(0.0, 1, 50), 1)
    expected = roc_auc_score(np.r_[np.ones(50), np.zeros(50)], np.r_[m, n])
    assert auc(m, n) == pytest.approx(expected, abs=1e-12)
    lo, hi = auc_interval(m, n, n_resamples=200)
    assert lo < auc(m, n) < hi


def test_auc_refuses_empty_sets_and_takes_unequal_ones():
    from sklearn.metrics import roc_auc_score

    with pytest.raises(ValueError, match="members and non-members; got 0 and 3"):
        auc([], [1, 2, 3])
    m, n = [0.3, 0.9], [0.1, 0.5, 0.9]
    assert auc(m, n) == pytest.approx(roc_auc_score([1, 1, 0, 0, 0], [*m, *n]))


def test_the_document_interval_of_the_auc_is_wider_than_a_chunk_one():
    """Chunks of one document move together: resampling documents gives a wider interval
    than resampling chunks when each document's chunks share a score."""
    from llmunlearn.measurement.mia import cluster_auc_interval

    rng = np.random.default_rng(0)
    doc_m, doc_n = rng.normal(0.3, 1, 8), rng.normal(0, 1, 8)
    m = np.repeat(doc_m, 6) + rng.normal(0, 0.05, 48)
    n = np.repeat(doc_n, 6) + rng.normal(0, 0.05, 48)
    groups = np.repeat(np.arange(8), 6)
    lo_d, hi_d = cluster_auc_interval(m, groups, n, groups + 100, n_resamples=400)
    lo_c, hi_c = auc_interval(m, n, n_resamples=400)
    assert lo_d <= auc(m, n) <= hi_d
    assert hi_d - lo_d > 1.5 * (hi_c - lo_c)


def test_a_utility_ratio_interval_is_paired_over_documents():
    """The same chunks in two models: a model that adds the same loss to every chunk has
    a ratio of exactly exp(that loss), with no width (pairing removes the chunks' own
    spread); a model that hurts one document only has an interval that reaches 1."""
    from llmunlearn.measurement.mia import cluster_ratio_interval

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 4)
    base = rng.normal(3.0, 1.0, 40)
    lo, hi = cluster_ratio_interval(base + 0.1, base, groups)
    assert lo == pytest.approx(np.exp(0.1)) and hi == pytest.approx(np.exp(0.1))
    hurt = base + np.where(groups == 0, 2.0, 0.0)
    point = np.exp(hurt.mean() - base.mean())
    lo, hi = cluster_ratio_interval(hurt, base, groups, n_resamples=500)
    assert lo == pytest.approx(1.0) and lo < point < hi
    with pytest.raises(ValueError, match="same chunks in both models: got 40 and 39"):
        cluster_ratio_interval(base, base[:39], groups)


def test_min_k_by_hand():
    v = np.array([-5.0, -1.0, -3.0, -2.0, -4.0])
    assert min_k(v, 0.4) == pytest.approx((-5 - 4) / 2)
    assert min_k(v, 1.0) == pytest.approx(v.mean())
    assert min_k(v, 0.01) == -5.0  # at least one token


def test_attack_scores_by_hand(tiny):
    model = build_model(tiny.model, 30, seed=0).eval()
    ids = torch.randint(2, 30, (2, 10), generator=torch.Generator().manual_seed(0))
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * 10] * 2, "labels": ids.tolist()}
    )
    stats = chunk_token_stats(model, ds)
    logits = model(input_ids=ids).logits[0].detach()
    lp = torch.log_softmax(logits, -1)
    logp = torch.stack([lp[t, ids[0, t + 1]] for t in range(9)])
    mu = torch.stack([(lp[t].exp() * lp[t]).sum() for t in range(9)])
    sd = torch.stack([((lp[t].exp() * lp[t] ** 2).sum() - mu[t] ** 2).sqrt() for t in range(9)])
    np.testing.assert_allclose(stats[0]["logp"], logp.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats[0]["z"], ((logp - mu) / sd).detach().numpy(), rtol=1e-4)
    scores = attack_scores(stats, ["some text", "other text"], reference=stats[::-1])
    assert scores["loss"][0] == pytest.approx(float(logp.mean()), rel=1e-5)
    # Carlini et al. 2021 and the Min-K% reference code: mean log-likelihood / zlib bytes
    assert scores["zlib"][0] == pytest.approx(
        float(logp.mean()) / len(zlib.compress(b"some text")), rel=1e-5
    )
    assert scores["reference"][0] == pytest.approx(stats[1]["nll"] - stats[0]["nll"])


def test_rouge_l_and_exact_match_by_hand():
    assert rouge_l_f1([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    # LCS of [1,3,4,5] and [1,2,3,4] is [1,3,4]: p = 3/4, r = 3/4
    assert rouge_l_f1([1, 3, 4, 5], [1, 2, 3, 4]) == pytest.approx(0.75)
    assert rouge_l_f1([7, 8], [1, 2]) == 0.0
    assert exact_match_length([1, 2, 9, 4], [1, 2, 3, 4]) == 2


def test_verbatim_memorisation_matches_a_manual_greedy_loop(tiny):
    model = build_model(tiny.model, 30, seed=0).eval()
    ids = torch.randint(2, 30, (3, 12), generator=torch.Generator().manual_seed(1))
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * 12] * 3, "labels": ids.tolist()}
    )
    res = verbatim_memorisation(model, ds, prefix=6, suffix=4)
    em, rl = [], []
    for row in ids:
        seq = row[:6].tolist()
        for _ in range(4):
            seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
        em.append(exact_match_length(seq[6:], row[6:10].tolist()))
        rl.append(rouge_l_f1(seq[6:], row[6:10].tolist()))
    assert res["exact_match_tokens"] == pytest.approx(np.mean(em))
    assert res["rouge_l"] == pytest.approx(np.mean(rl))


def test_multiple_choice_items_hold_the_true_continuation():
    ids = [[i * 100 + j for j in range(20)] for i in range(6)]
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * 20] * 6, "labels": ids}
    )
    for ctx, options, answer in multiple_choice_items(ds, 8, 4, n_items=6, seed=0):
        assert options[answer].tolist() == list(range(int(ctx[0]) + 8, int(ctx[0]) + 12))
        assert len(options) == 4 and len({int(o[0]) for o in options}) == 4


def test_kl_of_a_model_to_itself_is_zero(tiny):
    model = build_model(tiny.model, 30, seed=0).eval()
    ids = torch.randint(2, 30, (2, 10)).tolist()
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * 10] * 2, "labels": ids}
    )
    assert kl_to(model, model, ds) == pytest.approx(0.0, abs=1e-6)
    other = build_model(tiny.model, 30, seed=1).eval()
    assert kl_to(model, other, ds) > 0


def test_kl_equals_the_textbook_formula_with_padding_masked(tiny):
    model, other = (build_model(tiny.model, 30, seed=s).eval() for s in (0, 1))
    ids = torch.randint(2, 30, (3, 10), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a right-padded chunk: its last positions are not scored
    labels = ids.masked_fill(mask == 0, -100)
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist()}
    )
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1], -1)
        lq = torch.log_softmax(other(input_ids=ids, attention_mask=mask).logits[:, :-1], -1)
    per_position = (lq.exp() * (lq - lp)).sum(-1)  # KL(other || model)
    scored = labels[:, 1:] != -100
    expected = float(per_position[scored].mean())
    assert kl_to(model, other, ds, batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert kl_to(model, other, ds, batch_size=2) == pytest.approx(expected, rel=1e-5)  # cached


def test_reference_distributions_too_large_to_keep_are_streamed_not_built(tiny, monkeypatch):
    """The size of the reference's distributions is estimated before any is computed: over
    the cap they are computed batch by batch (an iterator, nothing kept), and the KL is the
    same number as when they are kept."""
    import llmunlearn.measurement.distance as distance

    model, other = (build_model(tiny.model, 30, seed=s).eval() for s in (0, 1))
    ids = torch.randint(2, 30, (4, 10), generator=torch.Generator().manual_seed(4))
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * 10] * 4, "labels": ids.tolist()}
    )
    kept = kl_to(model, other, ds, batch_size=2)
    distance._REFERENCE_PROBS.clear()
    monkeypatch.setattr(distance, "REFERENCE_CACHE_BYTES", 100)  # 4 x 9 x 30 x 4 bytes > 100
    streamed = distance.reference_distributions(other, ds, 2)
    assert not isinstance(streamed, list) and not distance._REFERENCE_PROBS
    assert kl_to(model, other, ds, batch_size=2) == pytest.approx(kept, rel=1e-6)
    assert not distance._REFERENCE_PROBS


def test_multiple_choice_scores_equal_scoring_each_whole_sequence(tiny):
    model = build_model(tiny.model, 30, seed=0).eval()
    g = torch.Generator().manual_seed(3)
    items = [
        (
            torch.randint(2, 30, (n_ctx,), generator=g),
            [torch.randint(2, 30, (n_opt,), generator=g) for _ in range(4)],
            0,
        )
        for n_ctx, n_opt in ((6, 3), (6, 3), (5, 1), (7, 4))
    ]
    scores = multiple_choice_scores(model, items, batch_size=1)
    for i, (ctx, options, _) in enumerate(items):
        for j, o in enumerate(options):
            seq = torch.cat([ctx, o])[None]
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=seq).logits[0, :-1], -1)
            expected = sum(float(lp[len(ctx) - 1 + t, o[t]]) for t in range(len(o)))
            assert float(scores[i, j]) == pytest.approx(expected, abs=1e-4)


def test_the_full_evaluation_equals_a_fresh_one_where_it_reuses_the_run(tiny):
    # evaluate_domain takes retain and general perplexity from the run's selected step
    # and forget / approximate from the pass that also feeds MIA: every number must be
    # what a from-scratch evaluation of the same folder gives
    from llmunlearn.evaluation import evaluate_model
    from llmunlearn.models import load_model
    from llmunlearn.data.corpus import domain_chunks
    from llmunlearn.evaluation import _zoo_model, evaluation_sets

    zoo = ul.pretrain_zoo(tiny, progress=False)
    runs = ul.evaluate_domain(tiny, "books", zoo, methods=["ga"], steps=2, progress=False)
    unlearned = ul.unlearn(tiny, "books", "ga", steps=2, original=zoo["original"], progress=False)
    assert "perplexity" in unlearned.summary["selected"]
    model, tok = load_model(unlearned.path / "selected")
    sets = evaluation_sets(tiny.unlearning, tiny.seed, *domain_chunks(tiny, "books", tok))
    refs = {
        "retrained": _zoo_model(zoo["retrained-books"])[0],
        "original": _zoo_model(zoo["original"])[0],
    }
    fresh = evaluate_model(model, tok, sets, refs, profile=tiny)
    reused = runs["ga"].summary
    for split, values in fresh["perplexity"].items():
        assert reused["perplexity"][split] == pytest.approx(values, rel=1e-6)
    for attack in ("loss", "min_k@0.3", "reference:retrained"):
        assert reused["mia"][attack]["auc"] == pytest.approx(fresh["mia"][attack]["auc"])
    assert reused["to_retrained"]["kl"] == pytest.approx(fresh["to_retrained"]["kl"], rel=1e-5)


def test_evaluate_folder_gives_every_metric(tiny):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    run = ul.unlearn(tiny, "books", "ga", steps=2, original=zoo["original"], progress=False)
    res = ul.evaluate_folder(tiny, "books", run.path / "selected", zoo, intervals=False).summary
    assert set(res) == {"perplexity", "mia", "verbatim", "utility", "to_retrained"}
    assert {
        "loss",
        "zlib",
        "min_k@0.3",
        "min_k_pp@0.3",
        "reference:retrained",
        "reference:original",
    } <= set(res["mia"])
    assert 0 <= res["utility"]["accuracy"] <= 1 and res["utility"]["chance"] == 0.25


def test_bootstrap_statistic_is_the_auc():
    # the vectorised statistic inside auc_interval reproduces auc() on the full sample:
    # with one resample of everything (n_resamples large, narrow data) the interval
    # brackets the point estimate, and on separable data it collapses to 1
    m, n = np.arange(10.0, 20.0), np.arange(0.0, 10.0)
    assert auc_interval(m, n, n_resamples=50) == (1.0, 1.0)
    assert auc(m, n) == 1.0


def test_every_metric_a_run_or_an_evaluation_reports_is_registered_with_a_direction(tiny):
    from llmunlearn.measurement.metrics import METRICS, metric

    zoo = ul.pretrain_zoo(tiny, progress=False)
    run = ul.unlearn(tiny, "books", "ga", steps=2, original=zoo["original"], progress=False)
    row = run.summary["evals"][-1]
    keys = [k for k in row if k.startswith(("ppl_", "acc_", "auc"))]
    assert {"ppl_forget", "acc_retain", "auc", "auc_loss"} <= set(keys)
    frame = ul.evaluation_frame(
        {
            "books": {
                "ga": ul.evaluate_folder(tiny, "books", run.path / "selected", zoo, intervals=False)
            }
        }
    )
    keys += [
        c
        for c in frame.columns
        if c.startswith(("ppl_", "verbatim_", "utility", "kl_"))
        or c.endswith(("|auc", "|auc_folded"))
    ]
    for k in keys:
        m = metric(k)
        assert m.higher_is_better is not None or m.ideal, k
    guide = ul.metric_guide(frame.columns)
    assert "domain" not in guide.index and "min_k@0.3|auc" in guide.index
    assert METRICS["utility_accuracy"].direction == "higher is better"


def test_the_metric_registry_refuses_duplicates_and_directionless_metrics():
    from llmunlearn.measurement.metrics import metric, register_metric

    with pytest.raises(ValueError, match="'ppl_forget' is already registered"):
        register_metric("ppl_forget", "again", False)
    with pytest.raises(ValueError, match="needs a direction"):
        register_metric("new_metric", "a metric", None)
    with pytest.raises(KeyError, match="no registered metric 'nonsense'"):
        metric("nonsense")


def test_tpr_at_a_low_fpr_by_hand_and_the_smallest_resolvable_rate():
    from llmunlearn.measurement.mia import tpr_at_fpr

    members = [0.9, 0.8, 0.1]
    non_members = [0.5, 0.4, 0.3, 0.2] * 25  # 100: rates resolved in steps of 1 %
    r = tpr_at_fpr(members, non_members, 0.01)
    assert r["tpr"] == pytest.approx(2 / 3) and r["fpr"] == 0.01
    few = tpr_at_fpr(members, [0.5, 0.4, 0.3, 0.2], 0.001)
    assert few["fpr"] == 0.25 and few["asked"] == 0.001  # 4 non-members resolve 25 %
    with pytest.raises(ValueError, match=r"false-positive rate must lie in \(0, 1\)"):
        tpr_at_fpr(members, non_members, 0.0)


def test_the_blind_baseline_sees_a_shift_in_the_text_and_nothing_in_exchangeable_sets():
    import random

    from llmunlearn.measurement.mia import blind_baseline

    rng = random.Random(0)
    pool = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    other = "red green blue cyan magenta yellow black white grey brown".split()

    def chunks(words, n_docs, prefix):
        texts, groups = [], []
        for d in range(n_docs):
            for _ in range(3):
                texts.append(" ".join(rng.choice(words) for _ in range(40)))
                groups.append(f"{prefix}{d}")
        return texts, groups

    m, n = chunks(pool, 12, "m"), chunks(pool, 12, "n")
    same = blind_baseline(*m, *n, folds=4)
    assert same["ci_low"] <= 0.5 <= same["ci_high"]  # exchangeable: nothing to see
    shifted = blind_baseline(*m, *chunks(other, 12, "o"), folds=4)
    assert shifted["auc"] > 0.95 and shifted["ci_low"] > 0.8  # the text gives it away
    for folds in (1, 13, 2.5):
        with pytest.raises(ValueError, match="blind-baseline folds must be an integer from 2"):
            blind_baseline(*m, *n, folds=folds)


def test_the_training_kl_and_the_evaluation_kl_agree(tiny):
    """The KL that GA + KL trains on (core.kl_to_reference, with gradients) and the one
    the evaluation reports (kl_to, from the cached reference distributions) are the same
    number on the same chunks, padding masked in both."""
    from llmunlearn.core import kl_to_reference

    model, other = (build_model(tiny.model, 30, seed=s).eval() for s in (0, 1))
    ids = torch.randint(2, 30, (3, 10), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    ds = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist()}
    )
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    trained = float(kl_to_reference(model, other, batch))
    assert kl_to(model, other, ds, batch_size=3) == pytest.approx(trained, rel=1e-5)


def test_verbatim_memorisation_of_chunks_too_short_is_not_measured_and_says_so(tiny):
    model = build_model(tiny.model, 30, seed=0).eval()
    ids = torch.randint(2, 30, (2, 12), generator=torch.Generator().manual_seed(1))
    ds = datasets.Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": [[1] * 8 + [0] * 4] * 2,
            "labels": ids.tolist(),
        }
    )
    res = verbatim_memorisation(model, ds, prefix=6, suffix=4)  # 8 real tokens, 10 needed
    assert res["n"] == 0 and np.isnan(res["exact_match_tokens"]) and np.isnan(res["rouge_l"])
    assert "6 + 4 real tokens" in res["note"]
