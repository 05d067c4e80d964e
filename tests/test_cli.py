import subprocess
import sys

import pytest

SUBCOMMANDS = ["book", "mathjax", "data", "pretrain", "unlearn", "evaluate", "lm-eval", "bench"]


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
