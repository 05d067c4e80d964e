"""The runner under `accelerate launch` with 2 CPU processes (gloo) gives the same metrics
as 1 process: each step's batch is split between the processes instead of accumulated."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import llmunlearn as ul
from llmunlearn.models import load_model

TOLERANCE = 1e-3  # relative; the two runs sum the same gradients in another order


@pytest.mark.parametrize("method", ["ga_gd_in"])
def test_two_processes_match_one(tiny, isolated_home, tmp_path, method):
    ul.pretrain(tiny, progress=False)
    other_home = tmp_path / "home2"
    shutil.copytree(isolated_home, other_home)
    one = ul.unlearn(tiny, "books", method, steps=4, progress=False)
    single = one.summary["evals"]

    env = {**os.environ, "LLMUNLEARN_HOME": str(other_home), "OMP_NUM_THREADS": "1"}
    script = Path(__file__).parent / "two_process_unlearn.py"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            "2",
            "--cpu",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(script),
            method,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    double = json.loads(line.removeprefix("RESULT "))
    assert [e["step"] for e in double] == [e["step"] for e in single]
    for a, b in zip(single, double):
        for key in a:
            if key.startswith("ppl_"):
                assert b[key] == pytest.approx(a[key], rel=TOLERANCE), (a["step"], key)
    # the model is written once, whole, by the main process: the same weights as one
    # process's (no half-written folder left beside it)
    two = Path(next(x for x in res.stdout.splitlines() if x.startswith("RUN "))[4:])
    for run_dir in (one.path, two):
        assert not list(run_dir.glob("*.partial"))
    a_model, _ = load_model(one.path / "model")
    b_model, _ = load_model(two / "model")
    for (name, pa), (_, pb) in zip(a_model.named_parameters(), b_model.named_parameters()):
        assert torch.allclose(pa, pb, rtol=1e-3, atol=1e-5), name
