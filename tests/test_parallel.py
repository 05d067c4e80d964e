"""Independent runs in worker processes: same results, same order, errors surface."""

import operator

import pytest

from llmunlearn.parallel import run_tasks, with_threads


def test_tasks_run_in_workers_and_come_back_in_order():
    tasks = [(f"t{i}", (i, 3), {}) for i in range(5)]
    assert run_tasks(operator.pow, tasks, jobs=2, threads=2) == [i**3 for i in range(5)]
    assert run_tasks(operator.pow, tasks, jobs=1) == [i**3 for i in range(5)]


def test_a_failing_worker_raises_in_the_parent():
    with pytest.raises(ZeroDivisionError):
        run_tasks(operator.truediv, [("ok", (1, 1), {}), ("bad", (1, 0), {})], jobs=2, threads=2)


def test_bad_jobs_is_named(tiny):
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        run_tasks(operator.pow, [("a", (1, 1), {})], jobs=0)
    assert with_threads(tiny, 2).threads == 1 and with_threads(tiny, 1).threads == 2
    import llmunlearn as ul

    with pytest.raises(ValueError, match="jobs must be an integer >= 1, got 0"):
        ul.get_profile("smoke", jobs=0)
