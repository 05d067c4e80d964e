"""The hyper-parameter grid, its referee rule, utility cost at target, robustness curves and
guidelines (hand-made frames), and grid runs on a tiny zoo."""

import math

import pandas as pd
import pytest

import llmunlearn as ul
from llmunlearn.studies.decisions import check_fraction
from llmunlearn.studies.robustness import (
    CURVE,
    FORGET_BAND,
    TOLERANCE,
    best_lr,
    check_band,
    cost_at_target,
    rule_columns,
    grid_cells,
    guidelines,
    is_default,
    ranking,
    robustness,
    utility_costs,
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
        ("grid_eval_steps", (1, 4, 2), "strictly increasing"),
        ("grid_eval_steps", (0, 2), "positive integers"),
        ("grid_eval_steps", (1, 1), "strictly increasing"),
        ("heldout_share", 0.95, "heldout_share"),
        ("heldout_share", -0.1, "heldout_share"),
        ("forget_repeats", 0, "forget_repeats"),
        ("forget_repeats", 17, "forget_repeats"),
        ("pretrain_order", "first", "pretrain_order"),
        ("forget_chars", 10**6, "forget share"),
    ],
)
def test_a_bad_grid_or_design_is_named_before_anything_runs(field, value, named):
    with pytest.raises(ValueError, match=named):
        ul.get_profile("smoke", **{field: value})


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, math.nan, True])
def test_a_tolerance_outside_zero_one_is_refused(value):
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        check_fraction("tolerance", value)


@pytest.mark.parametrize("value", [0.9, 0, -2, math.inf, math.nan])
def test_a_forget_band_below_one_is_refused(value):
    with pytest.raises(ValueError, match="factor >= 1"):
        check_band("forget band", value)


def test_a_pilot_model_is_measured_where_its_gap_is_read_with_the_full_numbers(tiny):
    """A dose-pilot or contrast original (``measure="gap"``) is the same model as the one
    measured everywhere: the same perplexity on each split it is measured on, and those
    are the memorisation gap's splits and general text; it is cached as a run of its own."""

    import llmunlearn.training.pretraining as pt

    prof = tiny.replace(forget_repeats=1)
    gap = ul.pretrain(prof, progress=False, measure="gap")
    full = ul.pretrain(prof, progress=False)
    assert gap.path != full.path
    measured = {d: set(v) for d, v in gap.summary["ppl"].items()}
    assert measured == {
        **{d: {"matched/forget", "matched/approximate"} for d in ul.DOMAINS},
        "general": {"evaluation"},
    }
    for d, splits in measured.items():
        for s in splits:
            assert gap.summary["ppl"][d][s] == pytest.approx(full.summary["ppl"][d][s], rel=1e-6)
    assert pt.memorisation_gap(gap) == pytest.approx(pt.memorisation_gap(full), rel=1e-6)
    assert len(full.summary["ppl"]["arxiv"]) > 2  # the full one has the other splits too
    with pytest.raises(ValueError, match="unknown measure 'some'; valid: all, gap"):
        ul.pretrain(prof, progress=False, measure="some")
    with pytest.raises(ValueError, match="retrained model is measured with measure='all'"):
        ul.pretrain(prof, without="arxiv", progress=False, measure="gap")


def test_an_empty_grid_or_an_unknown_method_is_named():
    with pytest.raises(ValueError, match="grid_lrs is empty"):
        grid_cells(ul.get_profile("smoke", grid_lrs=()))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke", grid_seed_methods=("ga", "nope")))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke", grid_sophia_methods=("nope",)))
    with pytest.raises(ValueError, match="nope"):
        grid_cells(ul.get_profile("smoke"), methods=["nope"])


def test_grid_cells_cover_every_method_lr_and_the_replicates_once():
    p = ul.get_profile(
        "smoke",
        grid_lrs=(1e-4, 1e-3, 1e-2),
        grid_seeds=(42, 43, 44),
        grid_seed_methods=("ga",),
        grid_sophia_methods=("ga", "ga_gd_in"),
        grid_survey_default_lr=True,
    )
    cells = grid_cells(p)
    keys = [(c["method"], c["optimizer"], c["lr"], c["replicate"]) for c in cells]
    assert len(keys) == len(set(keys))
    paper = [m for m, s in ul.METHODS.items() if s.paper]
    survey = len(ul.METHODS) - len(paper)
    # paper methods at every lr, survey ones at the default; ga on two more originals;
    # Sophia for two methods on the first
    assert len(cells) == 3 * len(paper) + survey + 3 * 2 + 3 * 2
    assert {c["replicate"] for c in cells if c["method"] != "ga"} == {42}
    assert {c["lr"] for c in cells if not ul.METHODS[c["method"]].paper} == {p.unlearn_lr}
    assert {c["seed"] for c in cells} == {p.seed}  # the unlearning seed is the profile's
    defaults = [c for c in cells if is_default(p, c)]
    assert len(defaults) == len(ul.METHODS) and all(c["replicate"] == 42 for c in defaults)


def frame_of(cells):
    """A grid frame from (domain, method, lr, replicate, step, forget over the retrained
    model's, retain, general, auc inside the retrained interval, status); forget over the
    approximate target is taken 1.1 x the retrained ratio, forget / approximate 1.5."""
    rows = [
        dict(
            domain=d,
            method=m,
            optimizer="-" if m == "retrained" else "adamw",
            lr=lr,
            seed=42,
            replicate=rep,
            step=st,
            forget_ref=f,
            forget_gap=1.3,  # the original's forget perplexity 30 % above the referee's
            forget_rel=1.1 * f,
            retain_rel=r,
            general_rel=g,
            # the paired AUC difference to the referee: inside the margin, or outside
            auc_diff_low=-0.05 if a else 0.05,
            auc_diff_high=0.05 if a else 0.25,
            auc_diff=0.0 if a else 0.15,
            status=status,
        )
        for d, m, lr, rep, st, f, r, g, a, status in cells
    ]
    return rule_columns(pd.DataFrame(rows))


def test_a_good_cell_needs_the_two_sided_band_the_utility_and_the_membership():
    ok = 1 + TOLERANCE / 2
    f = frame_of(
        [
            ("arxiv", "ga", 1e-4, 42, 2, 1.0, ok, ok, True, "finished"),  # good
            ("arxiv", "ga", 1e-4, 42, 4, FORGET_BAND * 1.3, ok, ok, True, "finished"),  # over
            ("arxiv", "ga", 1e-4, 42, 6, 0.5, ok, ok, True, "finished"),  # short
            ("arxiv", "ga", 1e-4, 42, 8, 1.0, 1 + 2 * TOLERANCE, ok, True, "finished"),
            ("arxiv", "ga", 1e-4, 42, 10, 1.0, ok, ok, False, "finished"),  # AUC outside
            ("arxiv", "ga", 1e-4, 42, 12, math.nan, math.nan, math.nan, None, "diverged"),
        ]
    )
    assert f["good"].tolist() == [True, False, False, False, False, False]


def test_the_exact_retrained_model_passes_the_referee_rule():
    """The referee measured against itself (forget ratio 1, AUC difference 0) whose utility
    matches the original's is good (by construction: the controls, not this row, test the
    rules)."""
    f = frame_of([("books", "retrained", 0.0, 42, 0, 1.0, 1.0, 1.0, True, "finished")])
    assert f["good"].all()
    assert utility_costs(f)["cost"].iloc[0] == 0


def test_cost_at_target_is_interpolated_in_log_space_and_censored_when_never_reached():
    run = pd.DataFrame(
        {
            "step": [0, 2, 4],
            "status": ["finished"] * 3,
            "forget_ref": [0.5, 2.0, 4.0],
            "retain_rel": [1.0, 1.21, 2.0],
            "general_rel": [1.0, 1.0, 1.0],
        }
    )
    # forget reaches 1 halfway (in log) between step 0 and 2: retain at exp(0.5 log 1.21)
    assert cost_at_target(run) == pytest.approx(0.1)
    never = run.assign(forget_ref=[0.5, 0.6, 0.7])
    assert cost_at_target(never) == math.inf
    diverged = run.assign(status=["finished", "diverged", "diverged"])
    assert cost_at_target(diverged) == math.inf


def test_robustness_is_the_area_under_the_share_of_lrs_within_each_tolerance():
    cells = []
    # lr 1e-4 reaches the referee at a 3.5 % cost (halfway between steps 0 and 2);
    # lr 1e-3 never reaches it (censored)
    cells += [
        ("arxiv", "ga_gd_in", 1e-4, 42, 0, 0.5, 1.0, 1.0, False, "finished"),
        ("arxiv", "ga_gd_in", 1e-4, 42, 2, 2.0, 1.035**2, 1.0, True, "finished"),
        ("arxiv", "ga_gd_in", 1e-3, 42, 0, 0.5, 1.0, 1.0, False, "finished"),
        ("arxiv", "ga_gd_in", 1e-3, 42, 2, 0.7, 1.5, 1.0, False, "finished"),
    ]
    s = robustness(frame_of(cells)).loc[("arxiv", "ga_gd_in", "adamw")]
    share = [0.5 if t > 0.035 else 0.0 for t in CURVE]
    assert s["score"] == pytest.approx(sum(share) / len(share))
    assert s["best cost"] == pytest.approx(0.035)
    assert s["censored"] == 0.5 and s["replicates"] == 1


def test_best_lr_is_chosen_on_the_first_replicate_and_reported_on_the_other():
    p = ul.get_profile("smoke", grid_seeds=(42, 43))
    f = frame_of(
        [
            ("books", "npo", lr, rep, st, fr, r, 1.0, True, "finished")
            for lr, rep, steps in (
                (1e-4, 42, ((0, 0.5, 1.0), (2, 2.0, 1.02**2))),  # cost 2 %
                (1e-3, 42, ((0, 0.5, 1.0), (2, 2.0, 1.10**2))),  # cost 10 %
                (1e-4, 43, ((0, 0.5, 1.0), (2, 2.0, 1.30**2))),  # the other: 30 %
                (1e-3, 43, ((0, 0.5, 1.0), (2, 2.0, 1.01**2))),  # cheaper, not chosen
            )
            for st, fr, r in steps
        ]
    )
    b = best_lr(f, p).loc[("books", "npo")]
    assert b["lr"] == 1e-4 and b["reached"]
    assert b["cost"] == pytest.approx(0.02)
    assert b["cost on replicate 43"] == pytest.approx(0.30)


def test_guidelines_are_checked_on_the_held_out_domain():
    cells = []
    for d in ("arxiv", "github", "books"):
        for st in (5, 10):
            # ga_gd_in is good at 1e-4 on every domain; ga only breaks the model
            cells.append((d, "ga_gd_in", 1e-4, 42, st, 1.0, 1.0, 1.0, True, "finished"))
            cells.append((d, "ga_gd_in", 1e-3, 42, st, 3.0, 1.05 + st / 20, 1.0, True, "finished"))
            cells.append((d, "ga", 1e-4, 42, st, 2.0, 1.5, 1.0, True, "finished"))
            cells.append((d, "ga", 1e-3, 42, st, 9.0, 3.0, 1.5, True, "finished"))
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


def grid_profile(tiny, **extra):
    return ul.get_profile(
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
                "max_doc_chars",
                "passage_chars",
                "general_doc_chars",
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
        grid_seed_methods=("ga",),
        grid_sophia_methods=(),
        grid_eval_steps=(1, 2, 4),
        **extra,
    )


def test_grid_runs_keep_numbers_and_only_the_default_keeps_weights(tiny):
    p = grid_profile(tiny, grid_seeds=(42,))
    zoo = ul.pretrain_zoo(p, progress=False)
    out = ul.run_grid(p, "arxiv", zoo["original"], methods=["ga"], progress=False)
    assert len(out) == 2
    for cell, run in out:
        assert run.done
        kept = (run.path / "selected").exists()
        assert kept == is_default(p, cell), cell
        assert run.config["train"]["lr"] == cell["lr"]
        assert run.config["train"]["schedule"] == "constant"
        # a constant rate after the warm-up: every evaluated step sees the peak
        assert {r["lr"] for r in run.summary["log"][1:]} == {cell["lr"]}
        assert [e["step"] for e in run.summary["evals"]] == [0, 1, 2, 4]
    # a grid run asked for again with its model is run again and keeps it
    cell, run = next((c, r) for c, r in out if not is_default(p, c))
    before = run.summary["evals"]
    again = ul.unlearn(p, "arxiv", "ga", lr=cell["lr"], original=zoo["original"], progress=False)
    assert (again.path / "selected").exists()
    assert again.summary["evals"] == before  # the same numbers: runs are deterministic


def test_the_retrained_model_is_a_good_row_of_its_own_grid_and_the_replicates_differ(tiny):
    """On a real (tiny) zoo: the exact retrained model's row measures forget perplexity
    over its own as exactly 1 and its AUC inside its own interval (the referee cannot
    miss itself), and the second replicate is another pre-training, not another order."""
    p = grid_profile(tiny, grid_seeds=(42, 43), pretrain_order="late")
    frame = ul.grid_frame(p, ["arxiv"], progress=False)
    ref = frame[frame["method"] == "retrained"].set_index("replicate")
    assert set(ref.index) == {42, 43}
    assert (ref["forget_ref"] == 1).all() and (ref["auc_diff"] == 0).all()
    assert ref["forget_ok"].all() and ref["member_ok"].all()
    assert (ref["step"] == 0).all()
    runs = frame[frame["method"] == "ga"]
    assert set(runs["replicate"]) == {42, 43}
    o42, o43 = (
        runs[(runs["replicate"] == r) & (runs["step"] == 0)]["ppl_forget"].iloc[0] for r in (42, 43)
    )
    assert o42 != o43  # two independently pre-trained originals
    assert frame[frame["status"] == "finished"]["auc"].between(0, 1).all()


def test_the_trajectory_auc_is_the_full_evaluations_auc(tiny):
    """evaluation_row's AUC (one pass per set) equals evaluate_model's Min-K% AUC."""
    from llmunlearn.data.corpus import domain_chunks
    from llmunlearn.evaluation import evaluate_model, evaluation_row, evaluation_sets
    from llmunlearn.training.pretraining import load_original

    run = ul.pretrain(tiny, progress=False)
    model, tok = load_original(run)
    chunks, general = domain_chunks(tiny, "github", tok)
    sets = evaluation_sets(tiny.unlearning, tiny.seed, chunks, general)
    row = evaluation_row(model.eval(), sets, tiny.seed)
    full = evaluate_model(model, tok, sets, {}, profile=tiny, intervals=False)
    assert row["auc"] == pytest.approx(full["mia"]["min_k@0.3"]["auc"])
    assert row["auc_loss"] == pytest.approx(full["mia"]["loss"]["auc"])


def test_a_method_that_never_reaches_the_referee_scores_zero_and_ties_are_kept():
    cells = []
    for d, reach in (("arxiv", ()), ("github", ()), ("books", ("ga", "ga_gd_in"))):
        for m in ("ga", "ga_gd_in"):
            top = 2.0 if m in reach else 0.8
            cells += [
                (d, m, 1e-4, 42, 0, 0.5, 1.0, 1.0, False, "finished"),
                (d, m, 1e-4, 42, 2, top, 1.0, 1.0, True, "finished"),
            ]
    scores = robustness(frame_of(cells))
    assert ul.most_robust(scores, "arxiv") == []  # both at 0: no evidence
    assert ul.most_robust(scores, "books") == ["ga", "ga_gd_in"]
    assert ul.hardest_domains(scores) == ["arxiv", "github"]  # a tie is not "code alone"
    assert ranking(scores).loc["ga", "books"] == 1


def test_the_order_contrast_counts_the_steps_a_retrained_model_really_trains(tiny):
    """The contrast's retrained steps are computed, not trained: they must be the steps
    the exact retrained model of each order trains when it is pre-trained."""

    import llmunlearn.studies.pretraining as pt

    frame = ul.order_contrast(tiny, progress=False)
    assert list(frame.index) == ["late", "mixed"]
    assert frame.loc["late", "forget seen"] == tiny.forget_repeats
    assert frame.loc["mixed", "forget seen"] == tiny.pretrain_epochs
    for order, repeats in pt.ORDER_CONTRAST.items():
        prof = tiny.replace(pretrain_order=order, forget_repeats=repeats or tiny.forget_repeats)
        run = ul.pretrain(prof, without="github", progress=False)
        base = ul.Run(ul.home() / "pretrain" / run.summary["base"]) if run.summary["base"] else None
        trained = run.summary["steps"] - (base.summary["steps"] if base else 0)
        assert trained == pt.retrained_steps(prof, "github")
