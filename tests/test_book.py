"""The book builder on a tiny book of its own: execution, reuse, failures, bad input."""

import shutil
from pathlib import Path

import nbformat
import pytest

from llmunlearn.report.book import ChapterFailed, build

ROOT = Path(__file__).resolve().parents[1]


def make_book(root: Path, cells: list[str]) -> Path:
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/ch\n"
    )
    (root / "book" / "intro.md").write_text("# Test book\n\n```{tableofcontents}\n```\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Chapter"),
        params,
        *map(nbformat.v4.new_code_cell, cells),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "book" / "ch.ipynb")
    return root


def test_build_executes_with_the_profile_then_reuses(tmp_path, capsys):
    root = make_book(tmp_path / "b", ['print("profile is", profile)'])
    index = build("smoke", root=root)
    assert index.exists() and index.name == "index.html"
    html = (index.parent / "book" / "ch.html").read_text()
    assert "profile is smoke" in html
    assert "executed" in capsys.readouterr().out
    build("smoke", root=root)
    assert "reused" in capsys.readouterr().out
    # the committed source stays output-free
    assert not nbformat.read(root / "book" / "ch.ipynb", 4).cells[2].outputs


def test_failing_cell_names_notebook_and_cell(tmp_path):
    root = make_book(tmp_path / "b", ["x = 1", 'raise ValueError("boom")'])
    with pytest.raises(
        ChapterFailed,
        match=r"(?s)ch.ipynb failed in code cell \[4\]"
        r".*raise ValueError.*ValueError: boom",
    ):
        build("smoke", root=root)
    assert not (root / "_build" / "smoke" / "_build" / "html" / "index.html").exists()


def test_unknown_chapter_and_profile_list_the_valid_ones(tmp_path):
    root = make_book(tmp_path / "b", ["pass"])
    with pytest.raises(ValueError, match="unknown chapter 'nope'; valid: ch"):
        build("smoke", only="nope", root=root)
    with pytest.raises(ValueError, match="unknown profile 'big'"):
        build("big", root=root)


def test_library_progress_reaches_the_terminal_and_the_kernel_stays_quiet(tmp_path, capfd):
    root = make_book(
        tmp_path / "b",
        ['from tqdm import tqdm\nfor _ in tqdm(range(3), desc="library work"):\n    pass'],
    )
    build("smoke", root=root)
    err = capfd.readouterr().err
    assert "library work" in err  # a bar inside a cell shows while the chapter runs
    assert "without encryption" not in err and "over TCP" not in err


def test_each_variant_page_has_its_own_title(tmp_path):
    root = make_book(tmp_path / "b", ["print(profile)"])
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        "  - file: book/ch-a\n    title: Chapter on apples\n"
        "  - file: book/ch-b\n    title: Chapter on pears\n"
    )
    (root / "book" / "variants.yml").write_text(
        "book/ch-a: {source: book/ch}\nbook/ch-b: {source: book/ch}\n"
    )
    index = build("smoke", root=root)
    for name, title in (("ch-a", "Chapter on apples"), ("ch-b", "Chapter on pears")):
        staged = nbformat.read(root / "_build" / "smoke" / "book" / f"{name}.ipynb", 4)
        assert staged.cells[0].source.splitlines()[0] == f"# {title}"
        assert f"<h1>{title}" in (index.parent / "book" / f"{name}.html").read_text()


def test_a_chapters_table_is_served_as_csv_beside_its_page(tmp_path):
    root = make_book(
        tmp_path / "b",
        [
            "import pandas as pd\nimport llmunlearn as ul\n"
            'ul.offer_csv(pd.DataFrame({"lr": [1e-4, 1e-3], "cost": [0.1, 0.4]}), "grid-x", '
            '"the grid")'
        ],
    )
    index = build("smoke", root=root)
    html = (index.parent / "book" / "ch.html").read_text()
    assert 'href="tables/grid-x.csv" download' in html
    served = index.parent / "book" / "tables" / "grid-x.csv"  # where the link points
    assert served.read_text().splitlines() == [",lr,cost", "0,0.0001,0.1", "1,0.001,0.4"]


@pytest.mark.parametrize("name", ["", "Grid", "a/b", "../x", "x y", 3])
def test_a_bad_table_name_is_refused_and_writes_nothing(tmp_path, monkeypatch, name):
    import pandas as pd

    from llmunlearn.report.book import offer_csv

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="file name must be lower-case"):
        offer_csv(pd.DataFrame({"a": [1]}), name)
    assert list(tmp_path.iterdir()) == []


def test_launch_buttons_follow_the_one_repository_setting(tmp_path):
    root = make_book(tmp_path / "b", ["x = 1"])
    index = build("smoke", root=root)
    page = (index.parent / "book" / "ch.html").read_text()
    assert "mybinder.org" not in page and "colab.research.google.com" not in page
    config = (root / "_config.yml").read_text()
    (root / "_config.yml").write_text(
        config.replace('url: ""', "url: https://github.com/example/llmunlearn-book")
    )
    index = build("smoke", root=root)
    page = (index.parent / "book" / "ch.html").read_text()
    assert "mybinder.org/v2/gh/example/llmunlearn-book/main?urlpath=" in page
    assert (
        "colab.research.google.com/github/example/llmunlearn-book/blob/main/book/ch.ipynb" in page
    )
