"""Build the book: execute each chapter with papermill into a staging folder, then render.

Committed notebooks stay output-free. ``build(profile)`` copies the book sources into
``_build/<profile>/``, executes every notebook listed in ``_toc.yml`` there with the
parameter ``profile``, and runs ``jupyter-book build`` with execution off and warnings as
errors. An executed chapter is reused while its source, its parameters and the library's
source are unchanged, so a rebuild with nothing changed takes seconds.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import yaml
from IPython.display import HTML, display
from myst_nb import glue as myst_glue
from traitlets.config import Config

from ..config import check_choice, get_profile
from ..runs import PROJECT_ROOT, allocator_env, write_json

BOOK_FILES = ("_config.yml", "_toc.yml")
LIBRARY = Path(__file__).resolve().parents[1]  # the package, above report/


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


def toc_titles(root: Path) -> dict[str, str]:
    """Entries of ``_toc.yml`` that set a ``title``: file -> title."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = {}

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child and "title" in child:
                    out[child["file"]] = child["title"]
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
    raise FileNotFoundError(
        f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists under {root}"
    )


def chapters(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Executable chapters: name (file stem) -> notebook path, in book order."""
    return {
        Path(e).name: p for e in toc_files(root) if (p := source_of(root, e)).suffix == ".ipynb"
    }


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


def kernel_env(interactive: bool) -> dict:
    """Environment of the chapters' kernels: the library's progress bars refresh every 2 s
    on a terminal and every 30 s in a log (CI); third-party bars (weights loading and
    saving, dataset preparation), accelerate's warning on tied weights and tqdm's wish
    for ipywidgets stay out of the chapters."""
    return {
        "TQDM_MININTERVAL": "2" if interactive else "30",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        "ACCELERATE_LOG_LEVEL": "ERROR",
        "LLMUNLEARN_PROGRESS": "console",  # text bars to the terminal, not widgets
        # tqdm.auto, imported by dependencies, wants ipywidgets in a kernel
        "PYTHONWARNINGS": "ignore:IProgress not found",
    }


def execute(src: Path, dst: Path, parameters: dict, key: str, title: str | None = None) -> bool:
    """Execute ``src`` into ``dst`` with papermill unless ``dst`` was executed with ``key``.
    ``title`` replaces the notebook's first heading (a chapter executed once per domain
    gets its own page title, the one ``_toc.yml`` gives it).

    Returns True if it ran, False if reused. Raises :class:`ChapterFailed` on a failing
    cell (papermill stops there; the failed notebook is kept at ``dst`` to inspect).
    """

    if dst.exists():
        meta = nbformat.read(dst, as_version=4).metadata.get("llmunlearn", {})
        if meta.get("key") == key:
            return False
    dst.parent.mkdir(parents=True, exist_ok=True)

    # The kernel runs this interpreter (the venv's), whatever "python" is on PATH, with
    # the allocator settings of every process the tool starts and KERNEL_ENV.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.update(allocator_env())
    os.environ.update(kernel_env(sys.stderr.isatty()))
    try:
        # What the library reports inside a cell (its progress bars: pre-training step
        # and tokens/s, method and domain, evaluations) goes to this terminal as it
        # happens. The kernel talks over local sockets (IPC), not TCP: nothing to encrypt,
        # and no warning about it at every chapter.
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(dst.parent),
            progress_bar=False,
            stderr_file=sys.stderr,
            config=Config({"KernelManager": {"transport": "ipc"}}),
        )
    except papermill.PapermillExecutionError as e:
        cell = next(
            (
                c.source
                for c in nbformat.read(dst, as_version=4).cells
                if c.get("execution_count") == e.exec_count
            ),
            "",
        )
        code = "\n".join(f"    | {line}" for line in cell.splitlines()[:8])
        raise ChapterFailed(
            f"{src.name} failed in code cell [{e.exec_count}]:\n{code}\n"
            f"  {e.ename}: {e.evalue}\n  executed notebook kept at {dst}"
        ) from None
    nb = nbformat.read(dst, as_version=4)
    fold_injected_parameters(nb)
    if title:
        for cell in nb.cells:
            if cell.cell_type == "markdown" and cell.source.startswith("# "):
                cell.source = f"# {title}" + cell.source[len(cell.source.split("\n")[0]) :]
                break
    nb.metadata["llmunlearn"] = {"key": key, "parameters": parameters}
    nbformat.write(nb, dst)
    return True


def fold_injected_parameters(nb) -> None:
    """Give papermill's injected-parameters cell the folding tags (``hide-input``,
    ``remove-input``) of the parameters cell it follows: a chapter that folds its
    parameters (the claims page, whose code stays out of sight) folds both."""
    tags = {"hide-input", "remove-input"}
    for prev, cell in zip(nb.cells, nb.cells[1:]):
        if "injected-parameters" in cell.metadata.get("tags", []):
            fold = tags & set(prev.metadata.get("tags", []))
            cell.metadata["tags"] = sorted(set(cell.metadata["tags"]) | fold)


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
    if only is not None:  # the chapter, with the root and the references its citations need
        entries = [entries[0], next(e for e in entries if Path(e).name == only)]
        if "book/references" in toc_files(root) and "book/references" not in entries:
            entries.append("book/references")
    _stage_sources(root, stage, entries, only)
    _execute_chapters(root, stage, entries, profile)
    return _render(stage, entries)


def _stage_sources(root: Path, stage: Path, entries: list[str], only: str | None) -> None:
    """Copy the book's files, pages, images and bibliography into ``stage`` (only what
    changed; a JupyterLab session's outputs stay out), with a table of contents of
    ``entries`` alone when one chapter is built."""
    for name in BOOK_FILES:
        _copy_if_changed(root / name, stage / name)
    if only is not None:
        toc = {
            "format": "jb-book",
            "root": entries[0],
            "chapters": [{"file": e} for e in entries[1:]],
        }
        (stage / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for extra in (root / "book").rglob("*"):  # pages, images, bibliography
        skip = {".ipynb_checkpoints", TABLES}
        parts = set(extra.relative_to(root).parts)
        if extra.is_file() and extra.suffix != ".ipynb" and not skip & parts:
            _copy_if_changed(extra, stage / extra.relative_to(root))


def _execute_chapters(root: Path, stage: Path, entries: list[str], profile: str) -> None:
    """Execute every notebook of ``entries`` into ``stage`` with papermill, each reused
    when its source, parameters, title and the library's code are unchanged; one line per
    chapter with its time."""
    lib = _library_digest()
    extra, titles = variants(root), toc_titles(root)
    todo = [e for e in entries if source_of(root, e).suffix == ".ipynb"]
    t_all = time.perf_counter()
    for i, entry in enumerate(todo, 1):
        src = source_of(root, entry)
        parameters = {
            "profile": profile,
            **{k: v for k, v in extra.get(entry, {}).items() if k != "source"},
        }
        title = titles.get(entry) if entry in extra else None
        key = hashlib.sha256(
            src.read_bytes() + repr((parameters, title)).encode() + lib.encode()
        ).hexdigest()
        t0 = time.perf_counter()
        _say(f"[{i}/{len(todo)}] {Path(entry).name:<24} running ...")
        try:
            ran = execute(src, stage / f"{entry}.ipynb", parameters, key, title)
        except ChapterFailed:
            _say(
                f"[{i}/{len(todo)}] {Path(entry).name:<24} FAILED after "
                f"{time.perf_counter() - t0:.1f} s"
            )
            raise
        _say(
            f"[{i}/{len(todo)}] {Path(entry).name:<24} {'executed' if ran else 'reused'} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    _say(f"chapters done in {time.perf_counter() - t_all:.1f} s; rendering with jupyter-book")


def _render(stage: Path, entries: list[str]) -> Path:
    """Render the staged book with Jupyter Book (warnings are errors), MathJax and the
    tables' downloads served from the build; returns its ``index.html``."""
    _launch_buttons(stage)
    _serve_mathjax(stage)
    _serve_tables(stage, entries)
    cmd = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(stage),
        "--path-output",
        str(stage),
        "-W",
        "-n",
        "--keep-going",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    index = stage / "_build" / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book reported success but {index} does not exist")
    return index


MATHJAX = "mathjax@3.2.2"
"""The MathJax release the built pages load: fetched once from the npm registry (never
committed), served from the build, so equations render without a network."""


def mathjax(fetch: bool = False) -> Path | None:
    """MathJax's browser bundle (its ``es5`` folder) in the environment
    (``<venv>/share/llmunlearn/``). Set-up (``make``, ``llmunlearn mathjax``) fetches it
    with ``npm pack`` and records the tarball's sha256 beside it; a build only reads it.
    None, with a warning (the pages then load MathJax from its CDN), when it is not
    there, or with ``fetch`` when npm is missing or the registry cannot be reached."""

    target = Path(sys.prefix) / "share" / "llmunlearn" / MATHJAX.replace("@", "-")
    if (target / "es5" / "tex-chtml.js").exists():
        return target / "es5"
    if not fetch:
        warnings.warn(
            f"MathJax is not in this environment ({target}); the pages will load "
            "it from its CDN. `llmunlearn mathjax` fetches it from npm"
        )
        return None
    npm = shutil.which("npm")
    try:
        if npm is None:
            raise OSError("npm is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [npm, "pack", MATHJAX, "--silent"],
                cwd=tmp,
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
            tarball = next(Path(tmp).glob("mathjax-*.tgz"))
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with tarfile.open(tarball) as tar:
                members = [
                    m
                    for m in tar.getmembers()
                    if m.name.startswith("package/es5/") and (m.isfile() or m.isdir())
                ]
                tar.extractall(partial, members=members, filter="data")
            (partial / "package" / "es5").rename(partial / "es5")
            shutil.rmtree(partial / "package")
            write_json(
                partial / "source.json",
                {
                    "package": MATHJAX,
                    "registry": "npm",
                    "licence": "Apache-2.0",
                    "sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(),
                },
            )
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    except (OSError, subprocess.SubprocessError, StopIteration) as e:
        warnings.warn(
            f"MathJax could not be fetched from npm ({e}); the pages will load "
            "it from its CDN, so equations need a network to render"
        )
        return None
    return target / "es5"


TABLES = "tables"
"""The folder, beside each executed chapter, that holds its tables as CSV files
(:func:`offer_csv`); the build serves it with the pages."""


def offer_csv(frame, name: str, label: str | None = None) -> Path:
    """Write ``frame`` to ``tables/<name>.csv`` beside the running chapter and show a link
    to it (the numbers behind a table, to take home; the built book serves the file
    beside the page). ``name``: lower-case letters, digits, ``-``, ``_`` and ``.``.
    Returns the file's path."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise ValueError(
            f"a table's file name must be lower-case letters, digits, '-', '_' or '.'; got {name!r}"
        )
    path = Path(TABLES) / f"{name}.csv"
    path.parent.mkdir(exist_ok=True)
    nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, (list, dict))).any()]
    frame.drop(columns=nested).to_csv(path)  # per-chunk lists stay in the runs' summaries
    text = html.escape(label or name)
    display(
        HTML(
            f'<p class="llmunlearn-csv"><a href="{path.as_posix()}" download>'
            f"Download {text} (CSV, {len(frame)} rows)</a></p>"
        )
    )
    return path


def _extra_path(stage: Path, update: dict | None = None) -> Path:
    """The staged book's ``_offline/`` folder, served at the HTML output's root through
    ``html_extra_path`` (with ``update`` merged into the staged Sphinx configuration)."""
    config = yaml.safe_load((stage / "_config.yml").read_text())
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx.update(update or {})
    sphinx["html_extra_path"] = ["_offline"]
    text = yaml.safe_dump(config, sort_keys=False)
    if (stage / "_config.yml").read_text() != text:
        (stage / "_config.yml").write_text(text)
    return stage / "_offline"


LAUNCHERS = {
    "binderhub_url": "https://mybinder.org",
    "colab_url": "https://colab.research.google.com",
    "notebook_interface": "jupyterlab",
}
"""Where a page's launch button opens its notebook, when the book has a public repository."""


def _launch_buttons(stage: Path) -> None:
    """Launch buttons and the repository link from the one setting ``repository.url`` of
    ``_config.yml``: on (Binder, Colab, the source) when it names a repository, off when
    it is empty (no button that leads nowhere)."""
    config = yaml.safe_load((stage / "_config.yml").read_text())
    repo = config.get("repository") or {}
    url = str(repo.get("url") or "").strip()
    html = config.setdefault("html", {})
    if url:
        config["repository"] = {"path_to_book": "", "branch": "main", **repo, "url": url}
        config["launch_buttons"] = dict(LAUNCHERS)
        html["use_repository_button"] = True
    else:
        config.pop("repository", None)
        config["launch_buttons"] = {"notebook_interface": "classic"}  # none configured
        html["use_repository_button"] = False
    text = yaml.safe_dump(config, sort_keys=False)
    if (stage / "_config.yml").read_text() != text:
        (stage / "_config.yml").write_text(text)


def _serve_tables(stage: Path, entries: list[str]) -> None:
    """Serve each chapter's CSV files (:func:`offer_csv`) beside its page: the ``tables/``
    folder beside each executed chapter is copied to the same place under ``_offline/``."""
    for rel in sorted({Path(e).parent / TABLES for e in entries}):
        for f in sorted((stage / rel).glob("*.csv")):
            _copy_if_changed(f, _extra_path(stage) / rel / f.name)


def _serve_mathjax(stage: Path) -> None:
    """Make the staged book serve MathJax from its own build: the bundle goes to
    ``_static/mathjax/`` of the HTML output through ``html_extra_path`` (not the source
    ``_static``, whose every .js Jupyter Book would add to every page), and the staged
    ``_config.yml`` points ``mathjax_path`` at it (relative to ``_static``)."""
    bundle = mathjax()
    if bundle is None:
        return
    extra = _extra_path(stage, {"mathjax_path": "mathjax/tex-chtml.js"}) / "_static" / "mathjax"
    if not (extra / "tex-chtml.js").exists():
        shutil.rmtree(extra, ignore_errors=True)
        shutil.copytree(bundle, extra)


def glue(name: str, value) -> None:
    """``myst_nb.glue`` for chapters: stores ``value`` (numpy scalars as plain Python
    numbers, so that format specs like ``:.2f`` work) without displaying it."""

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    myst_glue(name, value, display=False)


def build_status(profile: str, root: Path = PROJECT_ROOT):
    """Chapters executed for ``profile`` so far: parameters, start time and execution time
    from papermill's record in each staged notebook (a ``pandas.DataFrame``)."""

    stage = root / "_build" / profile
    rows = []
    for entry in toc_files(root):
        path = stage / f"{entry}.ipynb"
        if not path.exists():
            continue
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        rows.append(
            {
                "chapter": Path(entry).name,
                "parameters": meta.get("parameters"),
                "started": meta.get("start_time"),
                "seconds": meta.get("duration"),
                "status": "failed" if meta.get("exception") else "ok",
            }
        )
    return pd.DataFrame(rows).set_index("chapter") if rows else pd.DataFrame()


CHAPTER_PAGES = {
    "robustness": "robustness.html",
    "efficiency": "efficiency.html",
    "retraining": "retraining.html",
    "privacy": "privacy.html",
    "relearning": "relearning.html",
    "real-llm": "real-llm.html",
    "open work": "open-work.html",
}
"""Where each chapter a claim names is built (the claims page links them)."""


def claims_html(claims) -> str:
    """The claims table as one line per claim (verdict, k of n domains, the number that
    decided it, the chapter), with the criterion and the per-domain decisions folded beneath
    it (HTML ``<details>``): a reader takes the verdicts in at a glance and opens a row for
    its rule."""
    out = ['<div class="llmunlearn-claims">']
    for r in claims.to_dict("records"):
        page = CHAPTER_PAGES.get(r["chapter"], f"{r['chapter']}.html")
        out.append(
            "<details><summary>"
            f"<b>{html.escape(r['verdict'])}</b> ({html.escape(r['domains'] or 'one case')}): "
            f"{html.escape(r['claim'])} "
            f'&middot; <a href="{page}">{html.escape(r["chapter"])}</a></summary>'
            f"<p><b>Our number.</b> {html.escape(str(r['our number']))}</p>"
            f"<p><b>Per domain.</b> {html.escape(str(r['per domain']))}</p>"
            f"<p><b>Criterion.</b> {html.escape(r['criterion'])}</p></details>"
        )
    out.append("</div>")
    return "\n".join(out)
