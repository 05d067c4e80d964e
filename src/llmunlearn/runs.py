"""Run directories: every artefact lives in a folder named by a hash of what made it.

``<home>/<kind>/<name>-<hash>/`` holds ``config.json`` (the resolved inputs),
``provenance.json`` (versions, git revision, hardware) and the outputs. A run is complete
when ``DONE`` exists; a complete run is reused, an incomplete one is resumed or redone.
Writes go through a temporary file and a rename, so a killed process never leaves a
half-written JSON behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import datetime
import functools
import hashlib
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .stages import STAGES, code_state, stage_digest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The repository root when the package is installed from a checkout (editable)."""


def home() -> Path:
    """Where data, models and results are kept: ``$LLMUNLEARN_HOME``, else ``.llmunlearn/``
    in the checkout (git-ignored), else ``~/.cache/llmunlearn``."""
    if os.environ.get("LLMUNLEARN_HOME"):
        return Path(os.environ["LLMUNLEARN_HOME"]).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").exists() and (PROJECT_ROOT / "_toc.yml").exists():
        return PROJECT_ROOT / ".llmunlearn"
    return Path.home() / ".cache" / "llmunlearn"


@contextlib.contextmanager
def use_home(path: Path):
    """Make ``path`` the home (:func:`home`) inside the ``with`` block, the previous one
    back after it (a task's own folder, a benchmark's scratch copy)."""
    before = os.environ.get("LLMUNLEARN_HOME")
    os.environ["LLMUNLEARN_HOME"] = str(path)
    try:
        yield Path(path)
    finally:
        if before is None:
            os.environ.pop("LLMUNLEARN_HOME", None)
        else:
            os.environ["LLMUNLEARN_HOME"] = before


ALLOCATOR_ENV = {
    "MALLOC_TRIM_THRESHOLD_": "1000000000",
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TOP_PAD_": "268435456",
}
"""glibc allocator settings for every process the tool starts (the command line
re-executes itself with them, ``llmunlearn book`` passes them to its kernels): keep freed
memory instead of returning it to the system and faulting it back in on the next step.
``llmunlearn bench`` measures the effect; ``LLMUNLEARN_ALLOCATOR=0`` turns them off."""


def allocator_env() -> dict:
    """:data:`ALLOCATOR_ENV` unless ``LLMUNLEARN_ALLOCATOR=0`` (then nothing)."""
    return {} if os.environ.get("LLMUNLEARN_ALLOCATOR") == "0" else dict(ALLOCATOR_ENV)


def _jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def folder_written(path: Path):
    """Write a folder whole or not at all: the block writes into the yielded
    ``<path>.partial`` (emptied first), which then takes ``path``'s place (a file, link or
    folder there is removed). A folder of that name is always complete; a failure leaves
    only the ``.partial`` one, cleared by the next try."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    if path.is_symlink() or path.is_file():
        path.unlink()
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)


def config_hash(config: dict) -> str:
    """Short stable hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=_jsonable).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=_jsonable)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:  # a full disk, an interrupt: the old file stays as it was
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path):
    """The JSON in ``path``; a file that does not parse is a ``ValueError`` that names it
    and its run folder (delete the folder and the run is recomputed)."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"corrupt JSON file {path} ({e}); delete {Path(path).parent} "
                "to recompute what it held"
            ) from None


def provenance() -> dict:
    """Everything that can change a number: versions, git revision, hardware, threads."""
    import accelerate
    import datasets
    import tokenizers
    import torch
    import transformers

    try:
        rev = (
            subprocess.run(
                ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        rev = None
    try:
        dirty = (
            bool(
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(PROJECT_ROOT),
                        "status",
                        "--porcelain",
                        "--untracked-files=no",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.strip()
            )
            if rev
            else None
        )
    except (OSError, subprocess.SubprocessError):
        dirty = None
    import numpy

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if cuda else "cpu",
        "cuda": torch.cuda.get_device_name(0) if cuda else None,
        # what the training loop computes in (training/loop.py: bf16 autocast on a GPU only)
        "compute_dtype": "bf16 autocast, fp32 weights" if cuda else "fp32",
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "git_revision": rev,
        "git_dirty": dirty,  # uncommitted changes to tracked files when the run finished
        "versions": {
            m.__name__: m.__version__
            for m in (torch, transformers, tokenizers, datasets, accelerate, numpy)
        },
    }


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory. ``Run.create(kind, name, config)`` names it from ``config``."""

    path: Path

    @classmethod
    def create(cls, kind: str, name: str, config: dict, stage: str | None = None) -> "Run":
        """The run of ``config`` in folder ``kind``, made by ``stage`` of
        :mod:`llmunlearn.stages` (default: the folder's name). The key hashes the config
        with the stage's name and code digest (:func:`~llmunlearn.stages.stage_digest`), so
        edited code gives new runs; both are written into ``config.json``."""
        stage = stage or kind
        if stage in STAGES:
            config = {**config, "stage": stage, "stage code": stage_digest(stage)}
        path = home() / kind / f"{name}-{config_hash(config)}"
        made = _MADE.get()
        if made is not None:  # inside a call of a function marked with once()
            made.append(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        if not (path / "config.json").exists():
            write_json(path / "config.json", config)
        return run

    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists()

    def finish(self, summary: dict) -> None:
        """Record ``summary`` and provenance, then mark the run complete."""
        write_json(self.path / "summary.json", summary)
        write_json(self.path / "provenance.json", provenance())
        (self.path / "DONE").touch()
        # resumable training state is only needed until the run is complete
        for name in ("checkpoint", "checkpoint.new", "checkpoint.old"):
            shutil.rmtree(self.path / name, ignore_errors=True)

    @property
    def config(self) -> dict:
        return read_json(self.path / "config.json")

    @property
    def summary(self) -> dict:
        return read_json(self.path / "summary.json")

    @property
    def provenance(self) -> dict:
        return read_json(self.path / "provenance.json")


# --- each stage's output resolved once per process --------------------------------------

_MADE: contextvars.ContextVar[list | None] = contextvars.ContextVar("made", default=None)
"""The run folders made by the current call of a :func:`once` function (None outside)."""

QUIET_ARGUMENTS = ("progress",)
"""Arguments that change how a call reports, not what it returns: not part of its key."""


def once(fn):
    """Resolve a stage's function once per process: a second call with the same arguments
    (``progress`` aside), the same home and the package's code unchanged
    (:func:`~llmunlearn.stages.code_state`) returns the first call's result without
    building its inputs, configs and keys again, as long as every run the first call made
    or read is still finished (a run deleted by ``runs clean`` is made again). An entry
    point that walks the pipeline (a grid, a chapter) thereby builds each upstream run's key
    and splits each corpus once, however many of its stages ask for them. Calls whose
    arguments cannot be hashed are not remembered. A result that is not a :class:`Run` is
    handed out as a copy, so a caller that changes it changes no other caller's."""

    signature = inspect.signature(fn)
    memo: dict = {}

    @functools.wraps(fn)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        parts = tuple((k, v) for k, v in bound.arguments.items() if k not in QUIET_ARGUMENTS)
        key = (str(home()), code_state(), parts)
        try:
            hash(key)
        except TypeError:
            return fn(*args, **kwargs)
        outer = _MADE.get()
        hit = memo.get(key)
        if hit is not None and all((p / "DONE").exists() for p in hit[0]):
            if outer is not None:
                outer.extend(hit[0])
            return hit[1] if isinstance(hit[1], Run) else copy.deepcopy(hit[1])
        made: list = []
        token = _MADE.set(made)
        try:
            value = fn(*args, **kwargs)
        finally:
            _MADE.reset(token)
            if outer is not None:
                outer.extend(made)
        if made and all((p / "DONE").exists() for p in made):
            memo[key] = (made, value if isinstance(value, Run) else copy.deepcopy(value))
        return value

    call.forget = memo.clear  # for tests and for a session that wants a fresh walk
    return call


# --- managing the runs of a home: list, export, clean ----------------------------------


def stages() -> list[str]:
    """The folders of the home that hold runs (a run: a folder with ``config.json``)."""
    root = home()
    if not root.exists():
        return []
    return sorted(
        d.name
        for d in root.iterdir()
        if d.is_dir() and any((r / "config.json").exists() for r in d.iterdir() if r.is_dir())
    )


def _check_stage(stage: str | None) -> None:
    known = stages()
    if stage is not None and stage not in known:
        raise ValueError(
            f"unknown stage {stage!r}; stages with runs in {home()}: {', '.join(known) or 'none'}"
        )


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def list_runs(stage: str | None = None) -> list[dict]:
    """Every run of the home (or of one ``stage``): stage, key (the folder's name: what
    made it and its hash), status (``done``, or ``partial`` for a run that was stopped:
    resumed by the same command), size in bytes, when it last changed (ISO time), path."""

    _check_stage(stage)
    out = []
    for s in [stage] if stage else stages():
        for d in sorted((home() / s).iterdir()):
            if not (d / "config.json").exists():
                continue
            mtime = _mtime(d)
            out.append(
                {
                    "stage": s,
                    "key": d.name,
                    "status": "done" if (d / "DONE").exists() else "partial",
                    "size": _size(d),
                    "when": datetime.datetime.fromtimestamp(mtime).isoformat(timespec="seconds"),
                    "path": str(d),
                }
            )
    return out


def export_runs(path, force: bool = False, stage: str | None = None) -> Path:
    """One table of every run's configuration and summary (the summary's numbers and
    strings; lists such as loss curves left out), a row per run: CSV, or parquet when
    ``path`` ends in ``.parquet``. A ``path`` that exists and is not empty is refused
    without ``force``. Returns the path."""
    import pandas as pd

    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"export path must end in .csv or .parquet, got {str(path)!r}")
    if path.exists() and (path.is_dir() or path.stat().st_size > 0) and not force:
        raise ValueError(f"{path} exists and is not empty; pass --force to overwrite it")
    rows = []
    for r in list_runs(stage):
        d = Path(r["path"])
        flat = pd.json_normalize(read_json(d / "config.json"), sep=".").iloc[0].to_dict()
        row = {**r, **{f"config.{k}": _cell(v) for k, v in flat.items()}}
        if (d / "summary.json").exists():
            summ = pd.json_normalize(read_json(d / "summary.json"), sep=".").iloc[0].to_dict()
            row.update({f"summary.{k}": v for k, v in summ.items() if _scalar(v)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if path.suffix == ".parquet":
        frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(tmp)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def _cell(v):
    return v if _scalar(v) else json.dumps(v, default=str)


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``; anything
    else is a ``ValueError`` naming it and what is allowed."""

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", str(text).strip())
    if not m:
        raise ValueError(
            f"age must be a number followed by s, m, h, d or w (for example 12h or 7d), "
            f"got {text!r}"
        )
    return float(m.group(1)) * AGE_UNITS[m.group(2)]


def select_runs(stage=None, older_than: str | None = None, where=None) -> list[dict]:
    """The runs :func:`clean_runs` would delete: of ``stage`` (all stages when None), last
    changed more than ``older_than`` ago (a duration, :func:`parse_age`), and for which
    ``where(run_row)`` holds (a predicate; the command line's ``--code-changed``). Every
    value is checked before anything is read."""

    age = parse_age(older_than) if older_than is not None else None
    rows = list_runs(stage)
    if age is not None:
        now = time.time()
        rows = [r for r in rows if now - _mtime(Path(r["path"])) > age]
    return [r for r in rows if where is None or where(r)]


def _mtime(d: Path) -> float:
    """When a run last changed: its newest file's modification time."""
    return max((f.stat().st_mtime for f in d.iterdir()), default=d.stat().st_mtime)


def clean_runs(rows: list[dict]) -> list[Path]:
    """Delete the runs of ``rows`` (from :func:`select_runs`); a path outside the home is
    refused before anything is deleted. Returns the deleted paths."""
    root = home().resolve()
    paths = [Path(r["path"]).resolve() for r in rows]
    outside = [p for p in paths if not p.is_relative_to(root) or p == root]
    if outside:
        raise ValueError(f"refusing to delete outside the home {root}: {outside[0]}")
    for p in paths:
        shutil.rmtree(p)
    return paths
