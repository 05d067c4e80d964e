"""The package's house: every module stands above everything it imports.

Read from the source (ast), not by importing it: each relative import of a module of
``llmunlearn`` is an arrow from it to the module it names. On the coarse graph a folder
(``data/``, ``training/``, ``studies/``...) counts as one node; the layer order below is
written here once, over those nodes. An arrow into a higher layer, or a circle of arrows
on the coarse graph or between any two modules (inside a folder too), fails with the
modules named.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llmunlearn"

LAYERS = (
    ("foundation", ("config", "stages", "runs", "progress", "core")),
    ("data and models", ("data", "models")),
    ("measurement", ("measurement",)),
    ("training", ("training",)),
    ("evaluation of one model", ("evaluation",)),
    ("unlearning: the methods and the runner", ("unlearning",)),
    ("studies, one per chapter's question", ("studies",)),
    ("report", ("report",)),
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


def module_arrows() -> dict[str, set[str]]:
    """Module (dotted, below llmunlearn; a package is its ``__init__``) -> the modules
    it imports (relative imports only): the finer graph, in which a circle between two
    modules of one folder shows too."""
    modules = {
        ".".join(f.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): f
        for f in sorted(PACKAGE.rglob("*.py"))
    }
    out: dict[str, set[str]] = {}
    for name, f in modules.items():
        inside = list(f.relative_to(PACKAGE).parts[:-1])
        for node in ast.walk(ast.parse(f.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = inside[: len(inside) - (node.level - 1)] if node.level > 1 else inside
            target = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:  # a name that is a module is an arrow to it
                sub = f"{target}.{alias.name}" if target else alias.name
                out.setdefault(name, set()).add(sub if sub in modules else target)
        out.get(name, set()).discard(name)
    return out


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Every circle a depth-first walk of ``graph`` meets, as "a -> b -> a"."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


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
    assert circles(arrows()) == []  # between folders (and top-level modules)
    assert circles(module_arrows()) == []  # between any two modules, inside a folder too


def test_the_circle_finder_finds_circles():
    """A check of the checker: a circle of three, and one of a module with itself."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_every_chapter_finds_its_logic_by_its_name():
    """The chapters whose question is a study have a module of that name in studies/,
    the data and unlearning chapters a folder, pre-training its module in training/."""
    book = PACKAGE.parents[1] / "book"
    chapters = {p.stem.split("-")[0].replace("-", "_") for p in book.glob("*.ipynb")}
    studies = {p.stem for p in (PACKAGE / "studies").glob("*.py")}
    assert {"retraining", "robustness", "utility", "efficiency", "relearning", "claims"} <= (
        chapters & studies
    )
    assert "real_llm" in studies and "real-llm.ipynb" in {p.name for p in book.glob("*.ipynb")}
    assert (PACKAGE / "data").is_dir() and (PACKAGE / "unlearning").is_dir()
    assert (PACKAGE / "training" / "pretraining.py").is_file()


@pytest.mark.parametrize(
    "source, names",
    [
        ("from .config import X", {"config"}),
        ("from ..core import X", {"core"}),  # from a subpackage's module
        ("from . import studies", {"studies"}),
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


def test_a_circle_inside_a_folder_is_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "llmunlearn"
    (pkg / "studies").mkdir(parents=True)
    (pkg / "studies" / "__init__.py").write_text("")
    (pkg / "studies" / "a.py").write_text("from .b import x\n")
    (pkg / "studies" / "b.py").write_text("from . import a\nfrom ..config import y\n")
    (pkg / "config.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert module_arrows()["studies.b"] == {"studies.a", "config"}
    assert circles(module_arrows()) == ["studies.a -> studies.b -> studies.a"]
    assert circles(arrows()) == []  # one node on the coarse graph


def test_no_module_imports_another_module_s_private_name():
    """A name with a leading underscore is its module's own: importing it from another
    module couples the two through what is meant to change freely (issue 37)."""
    offenders = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                offenders += [f"{f.relative_to(PACKAGE)}: {n} from {node.module}" for n in private]
    assert not offenders, offenders


LAZY_IMPORTS = {
    ("training/executor.py", "ray"): "an optional extra (pip install -e '.[ray]')",
    ("studies/utility.py", "lm_eval"): "an optional extra (pip install -e '.[lmeval]')",
    ("progress.py", "tqdm"): "the notebook's or the terminal's bar, chosen at call time",
    ("runs.py", "accelerate"): "versions for provenance: runs ls and --version stay light",
    ("runs.py", "datasets"): "versions for provenance",
    ("runs.py", "tokenizers"): "versions for provenance",
    ("runs.py", "torch"): "versions for provenance",
    ("runs.py", "transformers"): "versions for provenance",
    ("runs.py", "numpy"): "only to write a JSON of numpy values",
    ("runs.py", "pandas"): "only for runs export",
    ("stages.py", "pandas"): "only for the status page's table: runs ls stays light",
    ("studies/real_llm.py", "..data.sources"): "tests replace these sources at call time",
    ("studies/real_llm.py", "..models"): "tests replace smollm2 at call time",
}
"""The imports a library module may make inside a function, each with its reason; every other
import sits at the top of its module (lazy only in the package facade and the command line)."""


def test_imports_sit_at_the_top_of_their_module():
    found = set()
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        if rel in ("cli.py", "__init__.py", "__main__.py"):
            continue
        tree = ast.parse(f.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found |= {(rel, a.name.split(".")[0]) for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    mod = "." * node.level + (node.module or "")
                    found.add((rel, mod if node.level else mod.split(".")[0]))
    unexplained = sorted(found - set(LAZY_IMPORTS))
    assert not unexplained, f"imports inside functions (move them to the top): {unexplained}"
