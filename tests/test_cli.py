import subprocess
import sys

import pytest

SUBCOMMANDS = [
    "book",
    "mathjax",
    "data",
    "pretrain",
    "unlearn",
    "grid",
    "relearn",
    "claims",
    "evaluate",
    "lm-eval",
    "bench",
    "plan",
    "runs",
]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "llmunlearn", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("sub", [[], *([s] for s in SUBCOMMANDS)])
def test_help(sub):
    res = cli(*sub, "--help")
    assert res.returncode == 0 and "usage: llmunlearn" in res.stdout


def test_unknown_profile_is_rejected_with_the_valid_ones():
    res = cli("book", "--profile", "laptop")
    assert res.returncode == 2
    assert "invalid choice: 'laptop'" in res.stderr and "smoke" in res.stderr


def test_unknown_method_and_domain_are_rejected_before_any_work():
    res = cli("unlearn", "--profile", "smoke", "--method", "nope")
    assert res.returncode == 2 and "unknown method 'nope'; valid: ga" in res.stderr
    res = cli("unlearn", "--profile", "smoke", "--domain", "poetry")
    assert res.returncode == 2 and "unknown domain 'poetry'; valid:" in res.stderr


@pytest.mark.parametrize(
    "args, named",
    [
        (["--methods", "ga,nope"], "unknown method 'nope'"),
        (["--lrs", ","], "--lrs names no value"),
        (["--lrs", "1e-3,fast"], "--lrs must be comma-separated numbers"),
        (["--lrs", "1e-3,-1"], "grid_lrs entry must be a positive finite number"),
        (["--domain", "poetry"], "unknown domain 'poetry'"),
        (["--seeds", "42,42"], "grid_seeds has a seed twice"),
        (["--executor", "slurm"], "unknown executor 'slurm'; valid: local, ray"),
    ],
)
def test_a_bad_grid_command_is_refused_before_anything_is_written(tmp_path, args, named):
    import os

    home = tmp_path / "home"
    res = subprocess.run(
        [sys.executable, "-m", "llmunlearn", "grid", "--profile", "smoke", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMUNLEARN_HOME": str(home)},
    )
    assert res.returncode == 2 and named in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not home.exists() or not any(home.rglob("*"))


def test_version_and_debug():
    """--version names the package's version; --debug keeps the traceback that a bad value
    otherwise turns into one line."""
    import llmunlearn

    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"llmunlearn {llmunlearn.__version__}"
    res = cli("--debug", "unlearn", "--profile", "smoke", "--method", "nope")
    assert res.returncode == 1 and "Traceback" in res.stderr
    assert "ValueError: unknown method 'nope'" in res.stderr
    res = cli("unlearn", "--profile", "smoke", "--method", "nope")
    assert "Traceback" not in res.stderr and "--debug" in res.stderr


def test_a_gpu_profile_without_a_gpu_says_what_it_would_cost_before_it_starts():
    import os

    no_gpu = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without one
    res = subprocess.run(
        [sys.executable, "-m", "llmunlearn", "unlearn", "--profile", "gpu", "--method", "nope"],
        capture_output=True,
        text=True,
        env=no_gpu,
    )
    first = res.stderr.splitlines()[0]
    assert "is sized for GPUs and this machine has none" in first
    assert "llmunlearn plan --profile gpu --device cpu-2core" in first and "--profile cpu" in first
    res = cli("unlearn", "--profile", "smoke", "--method", "nope")
    assert "sized for GPUs" not in res.stderr
