"""Independent runs in parallel worker processes (``jobs``), with one progress bar.

Runs of the zoo, of the methods of a domain or of a grid do not depend on each other once
the original model exists. With ``jobs > 1`` they execute in that many worker processes
(spawned, so each has a fresh torch), each with ``threads // jobs`` torch threads; the
parent shows one bar that counts finished runs and names the ones in flight. Results come
back in the order of the tasks. A worker that fails re-raises its exception in the
parent, after the runs already finished were kept (every run is cached on disk, so a
re-run does only what is missing).
"""

from __future__ import annotations

import dataclasses
from typing import Callable


def _call(fn, threads, args, kwargs):
    import torch

    torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def run_tasks(
    fn: Callable,
    tasks: list[tuple[str, tuple, dict]],
    jobs: int = 1,
    threads: int = 1,
    desc: str = "runs",
) -> list:
    """``[fn(*args, **kwargs) for name, args, kwargs in tasks]``, in ``jobs`` worker
    processes of ``threads // jobs`` torch threads each (in this process when ``jobs`` is
    1). ``fn`` must be importable (a module-level function)."""
    from .progress import progress_bar as tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs == 1 or len(tasks) <= 1:
        return [fn(*args, **kwargs) for _, args, kwargs in tasks]
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    per_worker = max(1, threads // jobs)
    results: dict[int, object] = {}
    bar = tqdm(total=len(tasks), desc=f"{desc} ({jobs} processes)", leave=True)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        pending = {
            pool.submit(_call, fn, per_worker, args, kwargs): (i, name)
            for i, (name, args, kwargs) in enumerate(tasks)
        }
        while pending:
            bar.set_postfix_str(", ".join(sorted(n for _, n in pending.values()))[:60])
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i, _ = pending.pop(future)
                results[i] = future.result()  # re-raises a worker's exception here
                bar.update(1)
    bar.close()
    return [results[i] for i in range(len(tasks))]


def with_threads(profile, jobs: int):
    """``profile`` with the threads each of ``jobs`` workers gets."""
    return dataclasses.replace(profile, threads=max(1, profile.threads // max(1, jobs)))
