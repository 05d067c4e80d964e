"""The benchmark command runs end to end on a tiny profile and writes its report. It
asserts what the report holds, never how fast anything was."""

import json

import llmunlearn as ul
from llmunlearn.studies.efficiency import BENCH_METHODS, run_bench


def test_bench_writes_every_measurement(tiny):
    path = run_bench(tiny, "github", steps=3, repeats=1, say=lambda msg: None)
    report = json.loads(path.read_text())
    assert set(report["unlearning"]) == set(BENCH_METHODS)
    for method in BENCH_METHODS:
        r = report["unlearning"][method]
        assert r["ours_tokens_per_s"] > 0 and r["trainer_tokens_per_s"] > 0
        assert r["ratio"] == r["ours_tokens_per_s"] / r["trainer_tokens_per_s"]
        assert r["ours_peak_mb"] > 0
    assert report["evaluation"]["ratio"] > 0
    assert report["full_evaluation"]["later_model_s"] > 0
    pre = report["pretraining"]
    assert 0 < pre["fraction_of_peak"] and pre["bare_loop_tokens_per_s"] > 0
    assert pre["ratio_to_bare_loop"] == pre["tokens_per_s"] / pre["bare_loop_tokens_per_s"]
    grid = report["grid"]  # the paper-style pipeline evaluated the grid's own steps
    assert len(grid["ours_s"]) == len(grid["paper_style_s"]) == len(grid["configs"]) > 0
    assert grid["paper_style_evaluated_steps"] == [grid["eval_steps"]] * len(grid["configs"])
    assert grid["ratio"] == sum(grid["paper_style_s"]) / sum(grid["ours_s"])
    shares = report["breakdown"]["share"]
    assert abs(sum(shares.values()) - 1) < 1e-6
    # the breakdown ran in a scratch folder: the real home holds no unlearning run
    runs = ul.home() / "unlearn"
    assert not runs.exists() or not any(runs.iterdir())


def test_the_device_check_measures_both_slices_and_plans_the_book(tiny):
    """`llmunlearn gpu-check` on this machine (a CPU here): both slices train through the
    loop, with tokens/s, MFU against the measured peak and peak memory, and the profile's
    book planned at those utilisations (slower utilisation, longer book)."""
    import math

    from llmunlearn.studies.efficiency import device_check

    r = device_check(tiny, steps=3)
    for name in ("pre-training", "grid (ga_kl_in)"):
        s = r[name]
        assert s["tokens_per_s"] > 0 and 0 < s["mfu"] and s["peak_mb"] > 0, (name, s)
        assert math.isclose(s["mfu"], s["flops_per_s"] / r["peak_flops"])
    assert r["precision"] == "no" and r["n_params"] > 0
    assert math.isfinite(r["book hours"]) and r["book hours"] > 0
