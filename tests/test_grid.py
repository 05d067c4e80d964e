"""The hyper-parameter grid, its scores and guidelines (hand-made frames), and grid runs."""

import math

import pandas as pd
import pytest

import llmunlearn as ul
from llmunlearn.grid import (
    TOLERANCE,
    best_lr,
    grid_cells,
    guidelines,
    is_default,
    ranking,
    robustness,
)


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("grid_lrs", (1e-3, -1e-3), "grid_lrs entry"),
        ("grid_lrs", (1e-3, math.nan), "grid_lrs entry"),
        ("grid_lrs", (1e-3, math.inf), "grid_lrs entry"),
        ("grid_lrs", (1e-3, 0.0), "grid_lrs entry"),
        ("grid_lrs", (1e-3, 1e-3), "twice"),
        ("grid_seeds", (42, 42), "twice"),
        ("grid_seeds", (), "at least one seed"),
        ("grid_seeds", (42, -1), "grid_seeds entry"),
        ("grid_seeds", (42, 1.5), "grid_seeds entry"),
    ],
)
def test_a_bad_grid_is_named_before_anything_runs(field, value, named):
    with pytest.raises(ValueError, match=named):
        ul.get_profile("smoke", **{field: value})


def test_an_empty_grid_or_an_unknown_method_is_named():
    with pytest.raises(ValueError, match="grid_lrs is empty"):
        grid_cells(ul.get_profile("smoke", grid_lrs=()))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke", grid_seed_methods=("ga", "nope")))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke", grid_sophia_methods=("nope",)))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke"), methods=["nope"])


def test_grid_cells_cover_every_method_lr_and_the_declared_seeds_once():
    p = ul.get_profile(
        "smoke",
        grid_lrs=(1e-4, 1e-3, 1e-2),
        grid_seeds=(42, 43, 44),
        grid_seed_methods=("ga",),
        grid_sophia_methods=("ga", "ga_gd_in"),
    )
    cells = grid_cells(p)
    keys = [(c["method"], c["optimizer"], c["lr"], c["seed"]) for c in cells]
    assert len(keys) == len(set(keys))
    n = len(ul.METHODS)
    assert len(cells) == 3 * n + 3 * 2 + 3 * 2  # every method; ga at 2 more seeds; Sophia
    assert {c["seed"] for c in cells if c["method"] != "ga"} == {42}
    assert {(c["method"], c["optimizer"]) for c in cells if c["optimizer"] == "sophia"} == {
        ("ga", "sophia"),
        ("ga_gd_in", "sophia"),
    }
    defaults = [c for c in cells if is_default(p, c)]
    assert len(defaults) == n and all(c["lr"] == p.unlearn_lr for c in defaults)


def frame_of(cells):
    """A grid frame from (domain, method, lr, seed, step, forget, retain, general, status)."""
    rows = [
        dict(
            domain=d,
            method=m,
            optimizer="adamw",
            lr=lr,
            seed=s,
            step=st,
            forget_rel=f,
            retain_rel=r,
            general_rel=g,
            status=status,
        )
        for d, m, lr, s, st, f, r, g, status in cells
    ]
    f = pd.DataFrame(rows)
    f["good"] = ul.grid.good(f)
    return f


def test_good_cells_scores_and_ranking():
    ok, hi = 1 + TOLERANCE / 2, 1 + 2 * TOLERANCE
    f = frame_of(
        [
            # ga_gd_in: 2 of 4 cells good (one misses the target, one breaks retain)
            ("arxiv", "ga_gd_in", 1e-4, 42, 5, 0.9, 1.0, 1.0, "finished"),
            ("arxiv", "ga_gd_in", 1e-4, 42, 10, 1.2, ok, ok, "finished"),
            ("arxiv", "ga_gd_in", 1e-3, 42, 5, 1.5, ok, 1.0, "finished"),
            ("arxiv", "ga_gd_in", 1e-3, 42, 10, 3.0, hi, 1.0, "finished"),
            # ga: one good cell, one diverged
            ("arxiv", "ga", 1e-4, 42, 5, 1.1, 1.0, ok, "finished"),
            ("arxiv", "ga", 1e-4, 42, 10, 5.0, hi, hi, "finished"),
            ("arxiv", "ga", 1e-3, 42, 5, 9.0, hi, hi, "finished"),
            ("arxiv", "ga", 1e-3, 42, 10, math.nan, math.nan, math.nan, "diverged"),
            # ga at a second seed: nothing good
            ("arxiv", "ga", 1e-4, 43, 5, 0.5, 1.0, 1.0, "finished"),
            ("arxiv", "ga", 1e-4, 43, 10, 0.8, 1.0, 1.0, "finished"),
            ("arxiv", "ga", 1e-3, 43, 5, 2.0, hi, 1.0, "finished"),
            ("arxiv", "ga", 1e-3, 43, 10, 4.0, hi, 1.0, "finished"),
        ]
    )
    assert f["good"].tolist() == [
        False,
        True,
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
    ]
    s = robustness(f).loc[("arxiv", "ga_gd_in", "adamw")]
    assert s["score"] == 0.5 and s["seeds"] == 1
    g = robustness(f).loc[("arxiv", "ga", "adamw")]
    assert g["score"] == pytest.approx(0.125) and g["score_min"] == 0
    assert g["score_max"] == 0.25 and g["seeds"] == 2 and g["diverged"] == 1 / 8
    assert ranking(robustness(f)).loc["ga_gd_in", "arxiv"] == 1


def test_best_lr_is_the_cheapest_selected_step_among_lrs_that_reach_the_target():
    p = ul.get_profile("smoke", grid_seeds=(42, 43))
    f = frame_of(
        [
            # lr 1e-4 reaches the target at step 10 at low cost; 1e-3 at step 5 at a higher one
            ("books", "npo", 1e-4, 42, 5, 0.9, 1.0, 1.0, "finished"),
            ("books", "npo", 1e-4, 42, 10, 1.1, 1.02, 1.03, "finished"),
            ("books", "npo", 1e-3, 42, 5, 1.3, 1.08, 1.01, "finished"),
            ("books", "npo", 1e-3, 42, 10, 3.0, 2.0, 1.5, "finished"),
            # rmu never reaches it: the lr that came closest, at its last step
            ("books", "rmu", 1e-4, 42, 5, 0.5, 1.0, 1.0, "finished"),
            ("books", "rmu", 1e-4, 42, 10, 0.6, 1.0, 1.0, "finished"),
            ("books", "rmu", 1e-3, 42, 5, 0.7, 1.0, 1.0, "finished"),
            ("books", "rmu", 1e-3, 42, 10, 0.8, 1.0, 1.0, "finished"),
            # another seed does not count
            ("books", "npo", 1e-2, 43, 5, 1.0, 1.0, 1.0, "finished"),
        ]
    )
    b = best_lr(f, p)
    assert b.loc[("books", "npo"), "lr"] == 1e-4 and b.loc[("books", "npo"), "step"] == 10
    assert b.loc[("books", "npo"), "reached"] and b.loc[("books", "npo"), "good"]
    r = b.loc[("books", "rmu")]
    assert not r["reached"] and r["lr"] == 1e-3 and r["step"] == 10


def test_guidelines_are_checked_on_the_held_out_domain():
    cells = []
    for d in ("arxiv", "github", "books"):
        for st in (5, 10):
            # ga_gd_in is good at 1e-4 on every domain; ga only breaks the model
            cells.append((d, "ga_gd_in", 1e-4, 42, st, 1.0 + st / 10, 1.0, 1.0, "finished"))
            cells.append((d, "ga_gd_in", 1e-3, 42, st, 3.0, 1.05 + st / 20, 1.0, "finished"))
            cells.append((d, "ga", 1e-4, 42, st, 2.0, 1.5, 1.0, "finished"))
            cells.append((d, "ga", 1e-3, 42, st, 9.0, 3.0, 1.5, "finished"))
    g = guidelines(frame_of(cells))
    assert len(g) == 12
    assert g.xs("method", level="guideline")["holds"].all()
    assert g.xs("method", level="guideline")["derived"].str.startswith("ga_gd_in").all()
    assert g.xs("learning rate", level="guideline")["holds"].all()
    fails = g.xs("what fails first", level="guideline")
    assert fails["derived"].str.startswith("retain first").all() and fails["holds"].all()
    # a held-out domain where the rule breaks: make books' ga_gd_in never good
    broken = frame_of(
        [
            c if not (c[0] == "books" and c[1] == "ga_gd_in") else (*c[:5], 0.5, *c[6:])
            for c in cells
        ]
    )
    gb = guidelines(broken)
    assert not gb.loc[("method", "books"), "holds"]


def test_grid_runs_keep_numbers_and_only_the_default_keeps_weights(tiny):
    p = ul.get_profile(
        "smoke",
        **{
            k: getattr(tiny, k)
            for k in (
                "forget_chars",
                "retain_chars",
                "approximate_chars",
                "general_retain_chars",
                "general_eval_chars",
                "min_doc_chars",
                "vocab_size",
                "chunk_len",
                "d_model",
                "n_layer",
                "pretrain_epochs",
                "unlearn_steps",
                "eval_every",
            )
        },
        grid_lrs=(1e-3, 3e-2),
        grid_seeds=(42, 43),
        grid_seed_methods=("ga",),
        grid_sophia_methods=(),
    )
    zoo = ul.pretrain_zoo(p, progress=False)
    out = ul.run_grid(p, "arxiv", zoo["original"], methods=["ga"], progress=False)
    assert len(out) == 4
    for cell, run in out:
        assert run.done
        kept = (run.path / "selected").exists()
        assert kept == is_default(p, cell), cell
        assert run.config["train"]["lr"] == cell["lr"]
        assert run.config["train"]["seed"] == cell["seed"]
    # a grid run asked for again with its model is run again and keeps it
    cell, run = next((c, r) for c, r in out if not is_default(p, c))
    before = run.summary["evals"]
    again = ul.unlearn(
        p, "arxiv", "ga", lr=cell["lr"], seed=cell["seed"], original=zoo["original"], progress=False
    )
    assert (again.path / "selected").exists()
    assert again.summary["evals"] == before  # the same numbers: runs are deterministic
    frame = ul.grid_frame(p, ["arxiv"], zoo=zoo, progress=False)
    assert set(frame["lr"]) == {1e-3, 3e-2} and set(frame["step"]) == {2, 4}
    assert frame[frame["status"] == "finished"]["auc"].between(0, 1).all()


def test_the_trajectory_auc_is_the_full_evaluations_auc(tiny):
    """evaluation_row's AUC (one pass per set) equals evaluate_model's Min-K% AUC."""
    from llmunlearn.data import domain_chunks
    from llmunlearn.evaluation import evaluate_model, evaluation_row, evaluation_sets
    from llmunlearn.pretraining import load_original

    run = ul.pretrain(tiny, progress=False)
    model, tok = load_original(run)
    chunks, general = domain_chunks(tiny, "github", tok)
    sets = evaluation_sets(tiny, chunks, general)
    row = evaluation_row(model.eval(), sets, tiny.seed)
    full = evaluate_model(model, tok, sets, {}, profile=tiny, intervals=False)
    assert row["auc"] == pytest.approx(full["mia"]["min_k@0.3"]["auc"])
    assert row["auc_loss"] == pytest.approx(full["mia"]["loss"]["auc"])


def test_a_tie_at_no_good_cell_names_no_most_robust_method_and_ties_are_kept():
    ok, hi = 1 + TOLERANCE / 2, 1 + 2 * TOLERANCE
    cells = []
    for d, good_for in (("arxiv", ()), ("github", ()), ("books", ("ga", "ga_gd_in"))):
        for m in ("ga", "ga_gd_in"):
            r = ok if m in good_for else hi
            cells += [(d, m, 1e-4, 42, 5, 1.2, r, 1.0, "finished")]
    scores = robustness(frame_of(cells))
    assert ul.most_robust(scores, "arxiv") == []  # both at 0: no evidence
    assert ul.most_robust(scores, "books") == ["ga", "ga_gd_in"]
    assert ul.hardest_domains(scores) == ["arxiv", "github"]  # a tie is not "code alone"
