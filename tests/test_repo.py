"""The repository's own rules: output-free notebooks, one dependency list, pinned torch."""

import json
import re
import subprocess
from pathlib import Path

import yaml

from llmunlearn.report.book import chapters, toc_files, source_of

ROOT = Path(__file__).resolve().parents[1]


def tracked_notebooks():
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.ipynb"], capture_output=True, text=True
    ).stdout.split()
    return [ROOT / f for f in out] or list((ROOT / "book").rglob("*.ipynb"))


def test_committed_notebooks_have_no_outputs_or_execution_counts():
    notebooks = tracked_notebooks()
    assert notebooks, "no notebooks found"
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{nb_path.name} cell {i} has outputs"
                assert cell.get("execution_count") is None, (
                    f"{nb_path.name} cell {i} has an execution count"
                )


def test_every_chapter_has_a_parameters_cell_with_profile():
    for name, path in chapters(ROOT).items():
        nb = json.loads(path.read_text())
        params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, f"{name}: needs exactly one cell tagged 'parameters'"
        assert "profile" in "".join(params[0]["source"]), f"{name}: no profile parameter"


def test_toc_entries_exist():
    for entry in toc_files(ROOT):
        assert source_of(ROOT, entry).exists()


def test_one_dependency_list_drives_conda_and_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip_section
    assert any(line.startswith("-e .") for line in pip_section)
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps  # a looser pin pulls a multi-GB CUDA build on CPU
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line
    )
    assert pins["torch"] == "2.13.0"
    for dep in deps:  # every direct dependency is pinned exactly
        name = dep.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip()
        assert name.lower() in {k.lower() for k in pins}, f"{name} missing from constraints.txt"


def test_jupyter_book_is_1x():
    import jupyter_book

    assert jupyter_book.__version__.startswith("1.")


def test_papermill_recognises_every_documented_parameter():
    """Each chapter's parameters as papermill reads them (``inspect_notebook``, the same
    parser that warns "Passed unknown parameter") hold every parameter the README's table
    documents for it, and ``profile``."""
    import papermill as pm

    after = (ROOT / "README.md").read_text().split("What each chapter takes")[1]
    table = after.split("\n\n")[1]  # the table: the paragraph after the heading line
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows, "the README's table of chapter parameters is missing"
    documented = {}
    for row in rows:
        chapters_cell, params_cell = row.split("|")[1:3]
        names = re.findall(r"`([a-z_]+)`", params_cell)
        for chapter in re.findall(r"`([a-z-]+)`", chapters_cell):
            documented[chapter] = [n for n in names if n not in ("matched", "shifted")]
    assert set(documented) == {p.stem for p in (ROOT / "book").glob("*.ipynb")}
    for chapter, names in documented.items():
        found = set(pm.inspect_notebook(str(ROOT / "book" / f"{chapter}.ipynb")))
        assert {"profile", *names} <= found, (chapter, sorted({"profile", *names} - found))


def test_chapters_import_the_facade_only_and_every_name_they_use_is_there():
    import llmunlearn as ul

    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        code = "\n".join(
            "".join(c["source"])
            for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "code"
        )
        assert not re.search(r"^\s*(from llmunlearn\.|import llmunlearn\.)", code, re.M), nb.name
        missing = sorted({n for n in re.findall(r"\bul\.(\w+)", code) if not hasattr(ul, n)})
        assert not missing, (nb.name, missing)
