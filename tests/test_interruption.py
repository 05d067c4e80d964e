"""SIGKILL part-way through each stage, then the same command again: it completes, with
nothing finished recomputed, lost or duplicated, no partial file read as complete, and the
same numbers as an uninterrupted run. Real subprocesses, real signals."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

SCRIPT = Path(__file__).parent / "interrupted_stage.py"


def _start(home, *args):
    env = {**os.environ, "LLMUNLEARN_HOME": str(home), "OMP_NUM_THREADS": "2"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(home, *args) -> dict:
    proc = _start(home, *args)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(
        next(line for line in out.splitlines() if line.startswith("RESULT ")).removeprefix(
            "RESULT "
        )
    )


def _kill_when(home, pattern, *args, timeout=300, root=None):
    """Start the stage, SIGKILL it as soon as ``root`` (default ``home``) holds a file
    matching ``pattern``; returns the matching paths at the kill."""
    proc = _start(home, *args)
    deadline = time.time() + timeout
    while time.time() < deadline:
        hits = list(Path(root or home).glob(pattern))
        if hits and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return hits
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the stage ended before {pattern} appeared: nothing was interrupted")


def _flat(obj, prefix="") -> dict:
    """Nested dicts and lists as one flat dict of numbers (pytest.approx compares flat)."""
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else None
    )
    if items is None:
        return {prefix: obj} if isinstance(obj, (int, float)) else {}
    return {k: v for key, value in items for k, v in _flat(value, f"{prefix}/{key}").items()}


def _done(home, kind):
    return sorted(p.parent.name for p in Path(home).glob(f"{kind}/*/DONE"))


@pytest.mark.parametrize(
    "stage,pattern,kind",
    [
        ("pretrain", "pretrain/*/checkpoint/train_state.json", "pretrain"),
        ("unlearn", "unlearn/*/checkpoint/train_state.json", "unlearn"),
    ],
)
def test_killed_training_resumes_to_the_same_numbers(stage, pattern, kind, tmp_path):
    straight = _finish(tmp_path / "straight", stage)
    home = tmp_path / "killed"
    if stage == "unlearn":  # the original model exists; the unlearning run is killed
        _finish(home, "pretrain")
    finished = {p: p.stat().st_mtime_ns for p in Path(home).glob("*/*/DONE")}
    hit = _kill_when(home, pattern, stage)
    run_dir = hit[0].parent.parent
    assert not (run_dir / "DONE").exists()  # killed mid-way: not complete
    state = json.loads(hit[0].read_text())  # never half-written
    assert 0 < state["step"]
    resumed = _finish(home, stage)
    assert _flat(resumed) == pytest.approx(_flat(straight), rel=1e-5)
    assert _done(home, kind) == _done(tmp_path / "straight", kind)  # nothing duplicated
    # what had finished before the kill was reused, not recomputed
    assert {p: p.stat().st_mtime_ns for p in finished} == finished


def test_killed_evaluation_is_redone_not_read(tmp_path):
    home = tmp_path / "killed"
    _finish(home, "pretrain")
    _kill_when(home, "evaluate/*/config.json", "evaluate")
    assert _done(home, "evaluate") == []  # the killed evaluation is not complete
    assert _finish(home, "evaluate") == _finish(tmp_path / "straight", "evaluate")
    assert len(_done(home, "evaluate")) == 1


def test_killed_data_build_completes_the_same(tmp_path):
    straight = _finish(tmp_path / "straight", "data")
    home = tmp_path / "killed"
    _kill_when(home, "data/*", "data")
    assert _finish(home, "data") == straight


def test_killed_chapter_is_executed_again_not_reused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("seconds = 0.0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\ntime.sleep(seconds)\nprint('slept')"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    src, dst = tmp_path / "chapter.ipynb", tmp_path / "stage" / "chapter.ipynb"
    nbformat.write(nb, src)
    home = tmp_path / "home"
    _kill_when(home, "stage/chapter.ipynb", "notebook", src, dst, 60, root=tmp_path)
    # papermill had written the notebook part-way; it carries no completion key
    assert "llmunlearn" not in nbformat.read(dst, as_version=4).metadata
    assert _finish(home, "notebook", src, dst, 0.1) == {"ran": True}
    assert _finish(home, "notebook", src, dst, 0.1) == {"ran": False}  # now reused
    shutil.rmtree(tmp_path / "stage")
