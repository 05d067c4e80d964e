"""The package's house: every module stands above everything it imports.

Read from the source (ast), not by importing it: each relative import of a module of
``llmunlearn`` is an arrow from it to the module it names (a subpackage counts as one
module). The layer order below is written here once; an arrow into a higher layer, or a
circle of arrows inside a layer, fails with the modules named.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llmunlearn"

LAYERS = (
    ("foundation", ("config", "runs", "progress", "core")),
    ("data, models and methods", ("sources", "data", "models", "optim", "methods")),
    ("measurement", ("metrics", "mia")),
    ("training", ("train", "executor", "pretraining")),
    ("evaluation of one model", ("evaluation",)),
    ("the unlearning runner", ("unlearning",)),
    (
        "studies, one per chapter's question",
        (
            "harness",
            "grid",
            "groundtruth",
            "relearn",
            "realllm",
            "quantisation",
            "results",
            "claims",
        ),
    ),
    ("report", ("plotting", "book", "bench")),
    ("command line and the package's face", ("cli", "__main__", "__init__")),
)
"""Bottom to top. A module may import from its own layer or any layer below."""


def arrows() -> dict[str, set[str]]:
    """Top-level module -> the top-level modules it imports (relative imports only)."""
    out: dict[str, set[str]] = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        inside = list(rel.parts[:-1])  # the package path of the file, below llmunlearn
        for node in ast.walk(ast.parse(f.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = inside[: len(inside) - (node.level - 1)] if node.level > 1 else inside
            parts = base + (node.module.split(".") if node.module else [])
            targets = [parts[0]] if parts else [a.name for a in node.names]
            out.setdefault(top, set()).update(t for t in targets if t != top)
    return out


def layer_of() -> dict[str, int]:
    return {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}


def test_every_module_has_a_layer():
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert modules - set(layer_of()) == set(), "modules with no layer in LAYERS"
    assert set(layer_of()) - modules == set(), "LAYERS names modules that do not exist"


def test_no_module_imports_from_a_higher_layer():
    layer = layer_of()
    upward = sorted(
        f"{a} ({LAYERS[layer[a]][0]}) imports {b} ({LAYERS[layer[b]][0]})"
        for a, targets in arrows().items()
        for b in targets
        if layer[b] > layer[a]
    )
    assert upward == []


def test_no_import_circle():
    graph = arrows()
    circles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


@pytest.mark.parametrize(
    "source, names",
    [
        ("from .config import X", {"config"}),
        ("from ..core import X", {"core"}),  # from a subpackage's module
        ("from . import grid", {"grid"}),
        ("import os\nfrom .data.sources import X", {"data"}),
    ],
)
def test_the_reader_sees_relative_imports(tmp_path, monkeypatch, source, names):
    """The arrows come from the source as written (a check of the checker)."""
    pkg = tmp_path / "llmunlearn"
    (pkg / "methods").mkdir(parents=True)
    target = pkg / "methods" / "x.py" if source.startswith("from ..") else pkg / "m.py"
    target.write_text(source + "\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    top = "methods" if target.parent.name == "methods" else "m"
    assert arrows()[top] == names
