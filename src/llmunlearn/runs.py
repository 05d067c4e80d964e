"""Run directories: every artefact lives in a folder named by a hash of what made it.

``<home>/<kind>/<name>-<hash>/`` holds ``config.json`` (the resolved inputs),
``provenance.json`` (versions, git revision, hardware) and the outputs. A run is complete
when ``DONE`` exists; a complete run is reused, an incomplete one is resumed or redone.
Writes go through a temporary file and a rename, so a killed process never leaves a
half-written JSON behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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
    def create(cls, kind: str, name: str, config: dict) -> "Run":
        path = home() / kind / f"{name}-{config_hash(config)}"
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
