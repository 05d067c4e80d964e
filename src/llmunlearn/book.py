"""Build the book: execute each chapter with papermill into a staging folder, then render.

Committed notebooks stay output-free. ``build(profile)`` copies the book sources into
``_build/<profile>/``, executes every notebook listed in ``_toc.yml`` there with the
parameter ``profile``, and runs ``jupyter-book build`` with execution off and warnings as
errors. An executed chapter is reused while its source, its parameters and the library's
source are unchanged, so a rebuild with nothing changed takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .config import check_choice, get_profile
from .runs import PROJECT_ROOT, allocator_env

BOOK_FILES = ("_config.yml", "_toc.yml")
LIBRARY = Path(__file__).resolve().parent


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; the message names the notebook and the cell."""


def toc_files(root: Path) -> list[str]:
    """Every file entry of ``_toc.yml`` in reading order (root first), without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child:
                    out.append(child["file"])
                walk(child)
    walk(toc)
    return out


def variants(root: Path) -> dict[str, dict]:
    """``book/variants.yml``: toc entry -> {"source": notebook, **extra parameters}."""
    path = root / "book" / "variants.yml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def source_of(root: Path, entry: str) -> Path:
    """The file an entry of ``_toc.yml`` is built from (a variant's source notebook)."""
    entry = variants(root).get(entry, {}).get("source", entry)
    for suffix in (".ipynb", ".md"):
        if (root / f"{entry}{suffix}").exists():
            return root / f"{entry}{suffix}"
    raise FileNotFoundError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor "
                            f"{entry}.md exists under {root}")


def chapters(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Executable chapters: name (file stem) -> notebook path, in book order."""
    return {Path(e).name: p for e in toc_files(root)
            if (p := source_of(root, e)).suffix == ".ipynb"}


def _library_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(LIBRARY.rglob("*.py")):
        h.update(f.relative_to(LIBRARY).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy without touching unchanged files, so Sphinx's incremental build stays fast."""
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def execute(src: Path, dst: Path, parameters: dict, key: str) -> bool:
    """Execute ``src`` into ``dst`` with papermill unless ``dst`` was executed with ``key``.

    Returns True if it ran, False if reused. Raises :class:`ChapterFailed` on a failing
    cell (papermill stops there; the failed notebook is kept at ``dst`` to inspect).
    """
    import nbformat
    import papermill

    if dst.exists():
        meta = nbformat.read(dst, as_version=4).metadata.get("llmunlearn", {})
        if meta.get("key") == key:
            return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    # The kernel runs this interpreter (the venv's), whatever "python" is on PATH, with
    # the allocator settings of every process the tool starts.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.update(allocator_env())
    try:
        papermill.execute_notebook(str(src), str(dst), parameters=parameters,
                                   kernel_name="python3", cwd=str(dst.parent),
                                   progress_bar={"desc": f"  {dst.stem} cells",
                                                 "leave": False})
    except papermill.PapermillExecutionError as e:
        cell = next((c.source for c in nbformat.read(dst, as_version=4).cells
                     if c.get("execution_count") == e.exec_count), "")
        code = "\n".join(f"    | {line}" for line in cell.splitlines()[:8])
        raise ChapterFailed(
            f"{src.name} failed in code cell [{e.exec_count}]:\n{code}\n"
            f"  {e.ename}: {e.evalue}\n  executed notebook kept at {dst}") from None
    nb = nbformat.read(dst, as_version=4)
    nb.metadata["llmunlearn"] = {"key": key, "parameters": parameters}
    nbformat.write(nb, dst)
    return True


def _say(msg: str) -> None:
    print(msg)


def build(profile: str = "cpu", only: str | None = None, root: Path = PROJECT_ROOT) -> Path:
    """Execute the chapters for ``profile`` (all, or ``only`` one) and render the book.

    Returns the path of the built ``index.html``. With ``only``, the staged table of
    contents holds the root page and that chapter alone, so the book that comes out is
    complete for what it contains.
    """
    get_profile(profile)  # validates the name
    root = Path(root)
    all_chapters = chapters(root)
    if only is not None:
        check_choice("chapter", only, all_chapters)
    stage = root / "_build" / (profile if only is None else f"{profile}-{only}")
    entries = toc_files(root)
    if only is not None:
        entries = [entries[0], next(e for e in entries if Path(e).name == only)]
    for name in BOOK_FILES:
        _copy_if_changed(root / name, stage / name)
    if only is not None:
        toc = {"format": "jb-book", "root": entries[0], "chapters": [{"file": entries[1]}]}
        (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for extra in (root / "book").rglob("*"):  # pages, images, bibliography
        if extra.is_file() and extra.suffix != ".ipynb" and ".ipynb_checkpoints" not in extra.parts:
            _copy_if_changed(extra, stage / extra.relative_to(root))

    lib = _library_digest()
    extra = variants(root)
    todo = [e for e in entries if source_of(root, e).suffix == ".ipynb"]
    t_all = time.perf_counter()
    for i, entry in enumerate(todo, 1):
        src = source_of(root, entry)
        parameters = {"profile": profile,
                      **{k: v for k, v in extra.get(entry, {}).items() if k != "source"}}
        key = hashlib.sha256(src.read_bytes() + repr(parameters).encode() + lib.encode()
                             ).hexdigest()
        t0 = time.perf_counter()
        _say(f"[{i}/{len(todo)}] {Path(entry).name:<24} running ...")
        try:
            ran = execute(src, stage / f"{entry}.ipynb", parameters, key)
        except ChapterFailed:
            _say(f"[{i}/{len(todo)}] {Path(entry).name:<24} FAILED after "
                f"{time.perf_counter() - t0:.1f} s")
            raise
        _say(f"[{i}/{len(todo)}] {Path(entry).name:<24} {'executed' if ran else 'reused'} "
            f"in {time.perf_counter() - t0:.1f} s")
    _say(f"chapters done in {time.perf_counter() - t_all:.1f} s; rendering with jupyter-book")
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage),
           "--path-output", str(stage), "-W", "-n", "--keep-going", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    index = stage / "_build" / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book reported success but {index} does not exist")
    return index


def glue(name: str, value) -> None:
    """``myst_nb.glue`` for chapters: stores ``value`` (numpy scalars as plain Python
    numbers, so that format specs like ``:.2f`` work) without displaying it."""
    from myst_nb import glue as myst_glue

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    myst_glue(name, value, display=False)


def build_status(profile: str, root: Path = PROJECT_ROOT):
    """Chapters executed for ``profile`` so far: parameters, start time and execution time
    from papermill's record in each staged notebook (a ``pandas.DataFrame``)."""
    import nbformat
    import pandas as pd

    stage = root / "_build" / profile
    rows = []
    for entry in toc_files(root):
        path = stage / f"{entry}.ipynb"
        if not path.exists():
            continue
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        rows.append({"chapter": Path(entry).name, "parameters": meta.get("parameters"),
                     "started": meta.get("start_time"), "seconds": meta.get("duration"),
                     "status": "failed" if meta.get("exception") else "ok"})
    return pd.DataFrame(rows).set_index("chapter") if rows else pd.DataFrame()
