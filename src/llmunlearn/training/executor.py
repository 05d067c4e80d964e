"""Where independent runs execute: in this process, in worker processes, or on Ray.

Runs of the zoo, of the methods of a domain or of a grid do not depend on each other once
the model they start from exists. :func:`run_tasks` executes them

- ``"local"`` (the default): in this process, one after another; with ``jobs > 1`` in that
  many spawned worker processes of ``threads // jobs`` torch threads each;
- ``"ray"``: as Ray tasks (``ray_address``: a running cluster, e.g. ``"auto"`` or
  ``"ray://head:10001"``; None starts a local Ray), each with ``threads`` CPUs, or one
  GPU where the profile asks for it. A task gets what its run reads from the driver's
  home (the folders it names, packed once and put in Ray's object store), runs in a home
  of its own, and returns its run folder packed; the driver unpacks it into its own home.
  So the run cache is the driver's, written from what the tasks return, and no shared
  file system is needed: a cluster's nodes need only this package installed.

:func:`run_missing` is what the zoo, the methods and the grid call: only the runs not
cached yet go to :func:`run_tasks` (so a cached chapter starts no worker), then every run
is read from the cache here. A run already cached in the driver's home is never sent.
Results come back in the order of the tasks. A task that fails re-raises in the driver
after the runs already finished were kept, so a re-run does only what is missing.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import multiprocessing
import os
import socket
import tarfile
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch

from ..config import EXECUTORS, check_choice
from ..progress import progress_bar as tqdm
from ..runs import Run, home, use_home

SETUP_HOOK = "LLMUNLEARN_WORKER_SETUP"


def _setup_worker() -> None:
    """A local worker's first step: call the function ``module.name`` that the environment
    variable ``LLMUNLEARN_WORKER_SETUP`` names, if any (what Ray's
    ``worker_process_setup_hook`` is to its workers; the tests use it to give spawned
    workers their fake sources)."""
    hook = os.environ.get(SETUP_HOOK)
    if hook:
        module, _, name = hook.rpartition(".")
        getattr(importlib.import_module(module), name)()


def _call(fn, threads, args, kwargs):

    torch.set_num_threads(threads)
    return fn(*args, **kwargs)


def with_threads(config, jobs: int):
    """``config`` (a profile, or a stage's inputs: anything with an ``execution`` part) with
    the threads each of ``jobs`` workers gets."""
    threads = max(1, config.execution.threads // max(1, jobs))
    return dataclasses.replace(
        config, execution=dataclasses.replace(config.execution, threads=threads)
    )


def run_tasks(
    fn: Callable,
    tasks: list[tuple[str, tuple, dict]],
    jobs: int = 1,
    threads: int = 1,
    desc: str = "runs",
    executor: str = "local",
    address: str | None = None,
    inputs: tuple = (),
    gpus: float = 0,
) -> list:
    """``[fn(*args, **kwargs) for name, args, kwargs in tasks]`` on ``executor``.
    ``fn`` must be importable (a module-level function) and return a
    :class:`~llmunlearn.runs.Run`. Locally: in this process when ``jobs`` is 1, else in
    ``jobs`` worker processes of ``threads // jobs`` torch threads each. On Ray: one task
    per run of ``threads`` CPUs (and ``gpus`` GPUs), carrying ``inputs`` (folders of the
    home the runs read; :class:`Run` arguments are carried too)."""
    check_choice("executor", executor, EXECUTORS)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if executor == "ray":
        return _on_ray(fn, tasks, threads, desc, address, inputs, gpus)
    if jobs == 1 or len(tasks) <= 1:
        return [fn(*args, **kwargs) for _, args, kwargs in tasks]

    per_worker = max(1, threads // jobs)
    results: dict[int, object] = {}
    bar = tqdm(total=len(tasks), desc=f"{desc} ({jobs} processes)", leave=True)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_setup_worker
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


def run_missing(
    fn: Callable,
    tasks: list[tuple[str, tuple, dict]],
    jobs: int = 1,
    threads: int = 1,
    desc: str = "runs",
    executor: str = "local",
    **remote,
) -> list:
    """:func:`run_tasks` for a cached run function (:func:`~llmunlearn.pretrain` or
    :func:`~llmunlearn.unlearn`, which take ``plan_only``): with one local job, every task
    in this process; else only the runs not cached yet go to :func:`run_tasks` (``remote``:
    its ``address``, ``inputs`` and ``gpus``), and each run is then read from the cache."""
    check_choice("executor", executor, EXECUTORS)
    if executor == "local" and jobs == 1:
        return run_tasks(fn, tasks)  # in this process: nothing to ask the cache first
    todo = [t for t in tasks if not fn(*t[1], **t[2], plan_only=True).done]
    if todo:
        run_tasks(fn, todo, jobs, threads, desc, executor, **remote)
    return [fn(*args, **kwargs, plan_only=True) for _, args, kwargs in tasks]


# --- Ray ----------------------------------------------------------------------------


def pack(root: Path, folders) -> bytes:
    """The ``folders`` (paths relative to ``root``) as one gzip-free tar archive, in
    memory (run folders hold already-compressed safetensors and small JSON files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in sorted({Path(f) for f in folders}):
            if (root / rel).exists():
                tar.add(root / rel, arcname=rel.as_posix())
    return buffer.getvalue()


def unpack(data: bytes, root: Path) -> None:
    """Extract a :func:`pack` archive under ``root`` (only plain files and folders
    inside it: the ``data`` filter of :mod:`tarfile`)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(root, filter="data")


@dataclasses.dataclass(frozen=True)
class _RunRef:
    """A :class:`~llmunlearn.runs.Run` argument on its way to a task: its path relative
    to the home, mapped back into the task's own home."""

    rel: str


def _swap(obj, kind, fn):
    """``obj`` with every instance of ``kind`` inside dicts, lists, tuples and dataclasses
    (a stage's inputs) replaced by ``fn(instance)``; a container with nothing to replace
    is returned as it is."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, dict):
        swapped = {k: _swap(v, kind, fn) for k, v in obj.items()}
        return obj if all(swapped[k] is v for k, v in obj.items()) else swapped
    if isinstance(obj, (list, tuple)):
        swapped = [_swap(v, kind, fn) for v in obj]
        return obj if all(a is b for a, b in zip(swapped, obj)) else type(obj)(swapped)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # a stage's inputs
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
        changed = {k: w for k, v in fields.items() if (w := _swap(v, kind, fn)) is not v}
        return dataclasses.replace(obj, **changed) if changed else obj
    return obj


def _run_folders(root: Path) -> set[str]:
    """Every run folder of a home (``<kind>/<run>``) and its data files' folders."""
    return {p.relative_to(root).as_posix() for p in root.glob("*/*")}


def remote_run(fn, args, kwargs, bundle: bytes, threads: int) -> tuple[str, bytes]:
    """What one Ray task does: unpack ``bundle`` into a fresh home, run
    ``fn(*args, **kwargs)`` there with ``threads`` torch threads, and return the run's
    path (relative to that home) and, packed, every folder the task wrote that the
    bundle did not hold (the run, and what it computed on the way: a base model, an
    evaluation row)."""

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="llmunlearn-task-") as tmp, use_home(tmp) as root:
        unpack(bundle, root)
        carried = _run_folders(root)
        args, kwargs = _swap((args, kwargs), _RunRef, lambda r: Run(root / r.rel))
        run = fn(*args, **kwargs)
        new = sorted(_run_folders(root) - carried)
        return run.path.relative_to(root).as_posix(), pack(root, new)


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """A ``ConnectionError`` naming ``address`` if nothing answers there within
    ``timeout`` seconds (``None`` and ``"auto"`` are not checked: Ray starts one, or
    finds the one this machine runs). ``host:port`` and ``ray://host:port`` are read."""

    if address in (None, "", "auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ValueError(f"Ray address {address!r} is not host:port or ray://host:port (or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(
            f"no Ray cluster answers at {address!r} ({e}); start one with `ray start "
            "--head`, or leave the address out to start a local Ray"
        ) from None


def _on_ray(fn, tasks, threads, desc, address, inputs, gpus) -> list:
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "executor 'ray' needs Ray: pip install 'ray>=2.40' (in the environment of "
            "every node of the cluster)"
        ) from e

    root = home()
    if not ray.is_initialized():
        check_ray_address(address)
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            **({} if address else {"num_cpus": os.cpu_count()}),
        )

    # what every task reads (its Run arguments too), packed and put in the object store once
    carried = list(inputs)

    def ref(run):
        carried.append(run.path.relative_to(root))
        return _RunRef(carried[-1].as_posix())

    sent = [_swap((args, kwargs), Run, ref) for _, args, kwargs in tasks]
    bundle = ray.put(pack(root, carried))
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(remote_run)
    refs = {task.remote(fn, a, k, bundle, threads): i for i, (a, k) in enumerate(sent)}
    results: dict[int, object] = {}

    with tqdm(total=len(refs), desc=f"{desc} (ray)", leave=True) as bar:
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            rel, data = ray.get(done[0])  # re-raises a task's exception here
            unpack(data, root)  # the driver writes the run into its own cache
            results[refs[done[0]]] = Run(root / rel)
            bar.update(1)
    return [results[i] for i in range(len(tasks))]
