"""Runs executed elsewhere: worker processes and a local Ray give the same numbers as this
process, and the runs land in the driver's own cache although Ray's tasks share no folder
with it."""

import operator
import os
from pathlib import Path

import pytest

import llmunlearn as ul
from llmunlearn.training.executor import pack, run_tasks, unpack, with_threads
from llmunlearn.studies.robustness import run_grid

TESTS = Path(__file__).parent


def test_tasks_run_in_workers_and_come_back_in_order():
    tasks = [(f"t{i}", (i, 3), {}) for i in range(5)]
    assert run_tasks(operator.pow, tasks, jobs=2, threads=2) == [i**3 for i in range(5)]
    assert run_tasks(operator.pow, tasks, jobs=1) == [i**3 for i in range(5)]


def test_a_failing_worker_raises_in_the_parent():
    with pytest.raises(ZeroDivisionError):
        run_tasks(operator.truediv, [("ok", (1, 1), {}), ("bad", (1, 0), {})], jobs=2, threads=2)


def test_bad_jobs_or_executor_is_named(tiny):
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        run_tasks(operator.pow, [("a", (1, 1), {})], jobs=0)
    with pytest.raises(ValueError, match="unknown executor 'slurm'; valid: local, ray"):
        run_tasks(operator.pow, [("a", (1, 1), {})], executor="slurm")
    assert with_threads(tiny, 2).threads == 1 and with_threads(tiny, 1).threads == 2
    with pytest.raises(ValueError, match="jobs must be an integer >= 1, got 0"):
        ul.get_profile("smoke", jobs=0)
    with pytest.raises(ValueError, match=r"ray_gpus_per_run must be a number in \[0, 8\]"):
        ul.get_profile("smoke", ray_gpus_per_run=-1)


def test_pack_and_unpack_carry_a_run_folder_and_nothing_outside_it(tmp_path):
    src = tmp_path / "a"
    (src / "unlearn" / "r1").mkdir(parents=True)
    (src / "unlearn" / "r1" / "summary.json").write_text('{"x": 1}')
    (src / "unlearn" / "r1" / "model").symlink_to("selected")
    (src / "other").mkdir()
    (src / "other" / "secret").write_text("not asked for")
    data = pack(src, ["unlearn/r1", "missing/folder"])
    unpack(data, tmp_path / "b")
    assert (tmp_path / "b" / "unlearn" / "r1" / "summary.json").read_text() == '{"x": 1}'
    assert os.readlink(tmp_path / "b" / "unlearn" / "r1" / "model") == "selected"
    assert not (tmp_path / "b" / "other").exists()


def test_an_unknown_executor_is_named_before_anything_runs(tiny):
    with pytest.raises(ValueError, match="unknown executor 'slurm'; valid: local, ray"):
        ul.get_profile("smoke", executor="slurm")
    assert not ul.home().exists()


def _numbers(runs) -> list[list[float]]:
    """Per run, every evaluated step's forget and retain perplexity and AUC."""
    return [
        [float(e[k]) for e in r.summary["evals"] for k in ("ppl_forget", "ppl_retain", "auc")]
        for _, r in runs
    ]


def test_a_grid_in_worker_processes_gives_the_numbers_of_this_process(tiny, monkeypatch, tmp_path):
    p = tiny.replace(grid_lrs=(1e-3, 1e-2), grid_seeds=(42,), grid_sophia_methods=())
    methods = ["ga", "ga_gd_in"]
    here = run_grid(p, "arxiv", methods=methods, progress=False)

    # a second home with the data and the original; the spawned workers read the same
    # fake sources as this test through the setup hook
    monkeypatch.setenv("LLMUNLEARN_HOME", str(tmp_path / "workers"))
    monkeypatch.setenv("LLMUNLEARN_WORKER_SETUP", "conftest.fake_sources")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    ul.pretrain(p, progress=False)
    two = p.replace(jobs=2)
    workers = run_grid(two, "arxiv", methods=methods, progress=False)
    assert [c for c, _ in workers] == [c for c, _ in here]
    assert [r.path.name for _, r in workers] == [r.path.name for _, r in here]
    assert _numbers(workers) == [pytest.approx(n, rel=1e-6) for n in _numbers(here)]
    # the runs are cached now: asked again, the grid starts no worker (a setup hook that
    # cannot be imported would fail in one)
    monkeypatch.setenv("LLMUNLEARN_WORKER_SETUP", "no_such_module.setup")
    again = run_grid(two, "arxiv", methods=methods, progress=False)
    assert [r.path for _, r in again] == [r.path for _, r in workers]


def test_a_grid_on_a_local_ray_gives_the_numbers_of_this_process(tiny, monkeypatch, tmp_path):
    import ray

    p = tiny.replace(grid_lrs=(1e-3, 1e-2), grid_seeds=(42,), grid_sophia_methods=(), threads=1)
    methods = ["ga", "ga_gd_in"]
    local = run_grid(p, "arxiv", methods=methods, progress=False)
    assert all(r.done for _, r in local)

    # a second home, as on another machine: the data and the original are there, no run
    monkeypatch.setenv("LLMUNLEARN_HOME", str(tmp_path / "driver"))
    ul.pretrain(p, progress=False)
    assert not (ul.home() / "unlearn").exists()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={
            # the tasks read the same fake sources as this test (they import conftest)
            "env_vars": {"PYTHONPATH": str(TESTS), "HF_HUB_OFFLINE": "1"},
            "worker_process_setup_hook": "conftest.fake_sources",
        },
    )
    try:
        remote = run_grid(p.replace(executor="ray"), "arxiv", methods=methods, progress=False)
    finally:
        ray.shutdown()
    assert [c for c, _ in remote] == [c for c, _ in local]
    assert all(r.done and r.path.parent == ul.home() / "unlearn" for _, r in remote)
    assert [r.path.name for _, r in remote] == [r.path.name for _, r in local]
    assert _numbers(remote) == [pytest.approx(n, rel=1e-6) for n in _numbers(local)]
    # the driver's cache now holds the runs: asked again, nothing is sent and Ray stays off
    again = run_grid(p.replace(executor="ray"), "arxiv", methods=methods, progress=False)
    assert not ray.is_initialized()
    assert [r.path for _, r in again] == [r.path for _, r in remote]
