"""Relearning: the split by documents, bad input, and a run on the tiny profile."""

import pytest

import llmunlearn as ul
from llmunlearn.studies.relearning import relearn_split, steps_to_recover


def test_relearned_and_measured_chunks_share_no_document():
    docs = [f"d{i // 3}" for i in range(30)] + ["long"] * 12  # 11 documents, 42 chunks
    part, held = relearn_split(docs, 0.25, seed=42)
    assert set(part).isdisjoint(held) and sorted(part + held) == list(range(len(docs)))
    assert {docs[i] for i in part}.isdisjoint({docs[i] for i in held})
    assert len(part) >= 0.25 * len(docs)
    assert relearn_split(docs, 0.25, seed=42) == (part, held)  # fixed by the seed
    assert relearn_split(docs, 0.25, seed=7) != (part, held)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.5"])
def test_a_fraction_outside_0_1_is_named(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        relearn_split(["a", "b", "c"], fraction, 0)


def test_a_forget_set_too_small_to_split_is_named():
    with pytest.raises(ValueError, match="too small to split"):
        relearn_split(["only"] * 5, 0.25, 0)


def test_relearning_measures_only_held_out_documents(tiny):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    path = zoo["retrained-github"].path / "model"
    run = ul.relearn_model(tiny, "github", path, fraction=0.5, steps=4, lr=1e-3, eval_every=2)
    s = run.summary
    assert s["status"] == "finished"
    assert set(s["relearn_docs"]).isdisjoint(s["heldout_docs"])
    assert [e["step"] for e in s["evals"]] == [0, 2, 4]
    assert all(0 <= e["auc"] <= 1 for e in s["evals"])
    assert s["evals"][-1]["ppl_heldout"] != s["evals"][0]["ppl_heldout"]  # it trained
    frame = ul.relearn_domain(
        tiny,
        "github",
        zoo,
        methods=["ga"],
        seeds=[42],
        fraction=0.5,
        steps=4,
        lr=1e-3,
        eval_every=2,
        progress=False,
    )
    assert set(frame["model"]) == {"original", "retrained", "ga"}
    t = steps_to_recover(frame)
    assert t.loc[("github", "original", 42), "steps to recover"] == 0
    assert t.loc[("github", "retrained", 42), "ppl after / retrained's"] == pytest.approx(1)


def test_only_a_method_that_unlearned_can_have_hidden_knowledge():
    import pandas as pd

    from llmunlearn.studies.relearning import HIDDEN, MARGIN, hidden_knowledge

    rows = []
    # (model, ppl_rel before relearning, after): retrained ends at 1.5
    for model, before, after in (
        ("original", 1.0, 1.0),
        ("retrained", 1.6, 1.5),
        ("ga", 3.0, 1.1),  # unlearned, came back far below the retrained model: hidden
        ("ga_gd_in", 1.8, 1.5),  # unlearned, relearned like the retrained model: gone
        ("rmu", 1.0 + MARGIN / 2, 1.0),  # never unlearned: nothing to hide
    ):
        for step, v in ((0, before), (4, after)):
            rows.append(dict(domain="arxiv", model=model, seed=42, step=step, ppl_rel=v, auc=0.5))
    pairs = hidden_knowledge(steps_to_recover(pd.DataFrame(rows)))
    assert list(pairs.index.get_level_values("model")) == ["ga", "ga_gd_in", "rmu"]
    assert pairs["unlearned"].tolist() == [True, True, False]
    assert pairs["hidden"].tolist() == [True, False, False]
    assert pairs.loc[("arxiv", "ga"), "ppl after / retrained's"] < HIDDEN


def test_hidden_knowledge_is_judged_within_each_model_against_the_retrained_one():
    """A model whose held-out forget perplexity ends above the retrained model's can still
    have hidden knowledge, if its own unseen text got even harder (and the other way
    round): the rule reads held-out forget over the model's own approximate perplexity."""
    import pandas as pd

    from llmunlearn.studies.relearning import hidden_knowledge

    rows = []
    # (model, held-out before, after, approximate after); the original's held-out is 20
    for model, before, after, approx in (
        ("original", 20, 20, 25),
        ("retrained", 32, 30, 25),  # own ratio after 1.2
        ("ga", 60, 20, 25),  # 0.8: far below the retrained model's ratio: hidden
        ("npo_gd", 60, 36, 30),  # 1.2: like the retrained model: gone
        ("task_vector", 60, 33, 40),  # above the retrained level, yet 0.83: hidden
    ):
        for step, v, a in ((0, before, 25), (4, after, approx)):
            rows.append(
                dict(
                    domain="books",
                    model=model,
                    seed=42,
                    step=step,
                    ppl_heldout=v,
                    ppl_approximate=a,
                    ppl_rel=v / 20,
                    auc=0.5,
                )
            )
    pairs = hidden_knowledge(steps_to_recover(pd.DataFrame(rows)))
    assert pairs["unlearned"].all()
    assert pairs["hidden"].tolist() == [True, False, True]
    assert pairs.loc[("books", "task_vector"), "ppl after / retrained's"] > 1  # old rule: no
