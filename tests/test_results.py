"""Results tables and figures on hand-made run folders (no training): what each table
says about the runs it reads, and that each figure draws one panel per thing it shows."""

import math

import pandas as pd
import pytest

import llmunlearn as ul
from llmunlearn.studies.robustness import good
from llmunlearn.report.results import trajectory_frame, unlearning_table
from llmunlearn.studies.efficiency import cost_frame, cost_ratios
from llmunlearn.runs import Run


def row(step, forget, approximate=100.0, retain=50.0, general=200.0, auc=0.6):
    return {
        "step": step,
        "tokens": 10 * step,
        "ppl_forget": forget,
        "ppl_approximate": approximate,
        "ppl_retain": retain,
        "ppl_general": general,
        "acc_forget": 0.1,
        "auc": auc,
        "perplexity": {"forget": {"ppl": forget}},
    }


def unlearning_run(method, evals, target=100.0, status="finished", flops=1e9, wall=2.0):
    run = Run.create(
        "unlearn",
        f"test-{method}",
        {"method": method, "domain": "books", "train": {"lr": 1e-4, "steps": 4}},
    )
    selected = ul.select_step(evals, target)
    run.finish(
        {
            "status": status,
            "evals": evals,
            "target": target,
            "selected": selected,
            "tokens": 100,
            "flops": flops,
            "wall_s": wall,
        }
    )
    return run


def test_trajectory_frame_has_one_row_per_evaluated_step_and_marks_the_selected_one():
    a = unlearning_run("ga", [row(0, 60), row(2, 90), row(4, 130)])
    b = unlearning_run("npo", [row(0, 60), row(2, 70), row(4, 80)])
    f = trajectory_frame([a, b])
    assert len(f) == 6 and set(f["method"]) == {"ga", "npo"}
    assert "perplexity" not in f  # nested values stay out of the flat frame
    sel = f[f["selected"]].set_index("method")["step"]
    assert sel["ga"] == 4  # the first step at the target (130 >= 100)
    assert sel["npo"] == 4  # none reaches it: the last step


def test_unlearning_table_reads_the_selected_step_and_the_references():
    runs = {"ga": unlearning_run("ga", [row(0, 60), row(2, 120), row(4, 400)])}
    original, retrained = row(0, 60), row(0, 95, approximate=98)
    t = unlearning_table(runs, original, retrained)
    assert t.loc["approximate-retraining target", "forget ppl"] == 100.0
    assert t.loc["exact retrained model", "forget ppl"] == 95
    assert t.loc["ga", "forget ppl"] == 120 and t.loc["ga", "step"] == 2
    assert t.loc["ga", "reached target"] == True  # noqa: E712
    assert t.loc["ga", "TFLOPs"] == pytest.approx(1e-3)


def test_cost_ratios_divide_retraining_by_unlearning():
    zoo = {}
    for name, flops, wall in (("original", 8e12, 100.0), ("retrained-books", 6e12, 90.0)):
        zoo[name] = Run.create("pretrain", f"test-{name}", {"n": name})
        zoo[name].finish({"tokens": 1, "flops": flops, "wall_s": wall})
    runs = {"books": {"ga": unlearning_run("ga", [row(0, 60), row(2, 90)], flops=3e9, wall=3.0)}}
    r = cost_ratios(cost_frame(zoo, runs))
    assert r.loc[("books", "ga"), "FLOPs ratio"] == pytest.approx(2000)
    assert r.loc[("books", "ga"), "wall-time ratio"] == pytest.approx(30)


def test_figures_draw_one_panel_per_method_domain_or_model():
    runs = [
        unlearning_run(m, [row(0, 60), row(2, 90 + i), row(4, 130 + i)])
        for i, m in enumerate(("ga", "npo", "rmu"))
    ]
    fig = ul.plot_method_trajectories(trajectory_frame(runs), row(0, 95))
    assert len([ax for ax in fig.axes if ax.has_data()]) == 3
    grid = pd.DataFrame(
        [
            dict(
                domain=d,
                method=m,
                optimizer=o,
                lr=lr,
                seed=42,
                replicate=42,
                step=s,
                forget_rel=1.2,
                retain_rel=1.05,
                general_rel=1.0,
                status="finished",
            )
            for d in ("arxiv", "books")
            for m, o in (("ga", "adamw"), ("ga", "sophia"), ("npo", "adamw"))
            for lr in (1e-4, 1e-3)
            for s in (5, 10)
        ]
    )
    grid.loc[0, ["forget_rel", "status"]] = [math.nan, "diverged"]
    grid["good"] = good(grid)
    fig = ul.plot_grid(grid, "arxiv")
    assert len([ax for ax in fig.axes if ax.images]) == 3  # ga, ga (sophia), npo
    fig = ul.plot_robustness(ul.robustness(grid))
    assert len(fig.axes) == 2  # one per domain
    fig = ul.plot_robustness_curves(grid, "books")
    assert len(fig.axes[0].lines) == 2  # ga and npo (AdamW)
    rel = pd.DataFrame(
        [
            dict(domain="books", model=m, seed=42, step=s, ppl_rel=r, auc=0.5)
            for m, r in (("original", 1.0), ("retrained", 2.0), ("ga", 1.5))
            for s in (0, 5)
        ]
    )
    fig = ul.plot_relearning(rel)
    assert len(fig.axes[0].lines) == 4  # three models and the level "back"
