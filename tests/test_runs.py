"""Runs a user can manage (issue 37): list, export and clean the home's runs, with bad
values named before anything is read or deleted, and nothing deleted outside the home."""

import os
import time

import pandas as pd
import pytest

from llmunlearn import cli
from llmunlearn.runs import Run, clean_runs, export_runs, list_runs, parse_age, select_runs


def _runs():
    a = Run.create("pretrain", "tiny-original", {"seed": 1})
    a.finish({"ppl": {"books": {"forget": 12.5}}, "steps": 3, "log": [1, 2, 3]})
    b = Run.create("unlearn", "tiny-books-ga", {"method": "ga", "code": "stale"})
    old = time.time() - 10 * 86400
    for f in b.path.iterdir():
        os.utime(f, (old, old))
    return a, b


def test_ls_lists_every_run_with_its_stage_status_and_size():
    a, b = _runs()
    rows = {r["key"]: r for r in list_runs()}
    assert rows[a.path.name]["stage"] == "pretrain" and rows[a.path.name]["status"] == "done"
    assert rows[b.path.name]["status"] == "partial" and rows[b.path.name]["size"] > 0
    assert [r["key"] for r in list_runs("unlearn")] == [b.path.name]


def test_export_writes_one_table_of_configs_and_summaries(tmp_path):
    a, _ = _runs()
    out = export_runs(tmp_path / "runs.csv")
    frame = pd.read_csv(out).set_index("key")
    assert frame.loc[a.path.name, "summary.ppl.books.forget"] == 12.5
    assert frame.loc[a.path.name, "config.seed"] == 1
    assert "summary.log" not in frame  # lists (loss curves) are left out
    with pytest.raises(ValueError, match="exists and is not empty; pass --force"):
        export_runs(out)
    assert export_runs(out, force=True) == out
    export_runs(tmp_path / "runs.parquet")
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == 2
    with pytest.raises(ValueError, match=r"must end in \.csv or \.parquet"):
        export_runs(tmp_path / "runs.txt")


def test_clean_selects_by_stage_age_and_code_and_says_what_it_deletes(capsys):
    a, b = _runs()
    assert [r["key"] for r in select_runs(older_than="7d")] == [b.path.name]
    assert select_runs(older_than="30d") == []
    assert cli.main(["runs", "clean", "--code-changed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {b.path}" in out and str(a.path) not in out and b.path.exists()
    assert cli.main(["runs", "clean", "--stage", "unlearn"]) == 0
    assert f"deleting {b.path}" in capsys.readouterr().out
    assert not b.path.exists() and a.path.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["runs", "clean", "--stage", "nope"], "unknown stage 'nope'; stages with runs in"),
        (["runs", "clean", "--older-than", "7x"], "age must be a number followed by s, m, h"),
        (["runs", "ls", "--stage", "nope"], "unknown stage 'nope'"),
    ],
)
def test_bad_values_are_named_before_anything_is_deleted(argv, message, capsys):
    _runs()
    before = list_runs()
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert list_runs() == before


def test_clean_never_deletes_outside_the_home(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ValueError, match="refusing to delete outside the home"):
        clean_runs([{"path": str(outside)}])
    assert outside.exists()
    assert parse_age("12h") == 43200 and parse_age("2w") == 14 * 86400


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    from llmunlearn.runs import folder_written

    target = tmp_path / "model"
    with folder_written(target) as partial:
        (partial / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with folder_written(target) as partial:
            (partial / "a.txt").write_text("two")
            raise RuntimeError("killed half-way")
    assert (target / "a.txt").read_text() == "one"  # the complete folder stands
    with folder_written(target) as partial:  # a folder in its place is replaced whole
        (partial / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    link = tmp_path / "selected"
    link.symlink_to("model")
    with folder_written(link) as partial:  # a link is replaced, not what it points to
        (partial / "c.txt").write_text("four")
    assert not link.is_symlink() and (link / "c.txt").exists() and (target / "b.txt").exists()
    assert not list(tmp_path.glob("*.partial"))
