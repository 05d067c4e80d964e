"""The pipeline's stages (issue 37): keys that know the code, and one walk per entry point."""

import ast
import collections
import contextlib
import dataclasses
import shutil
from pathlib import Path

import pytest

import llmunlearn as ul
from llmunlearn import cli, runs, stages
from llmunlearn.data import corpus
from llmunlearn.runs import Run


@pytest.fixture
def edit(monkeypatch):
    """Stand in an edited package file: ``edit("training/loop.py", "\\nX = 1\\n")``."""
    real = stages.read_source

    def apply(rel, addition):
        target = str(stages.PACKAGE / rel)
        monkeypatch.setattr(
            stages, "read_source", lambda p: real(p) + (addition if str(p) == target else "")
        )
        stages._digest.cache_clear()

    yield apply
    stages._digest.cache_clear()


def _digests():
    return {name: stages.stage_digest(name) for name in stages.STAGES}


def test_editing_a_file_gives_new_keys_to_its_stages_and_everything_downstream_only(edit):
    before = _digests()
    edit("training/loop.py", "\nEDITED = 1\n")
    after = _digests()
    changed = {s for s in before if before[s] != after[s]}
    direct = {s for s, st in stages.STAGES.items() if "training/loop.py" in st.code}
    downstream = {s for s in stages.STAGES if direct & {s, *stages.upstream(s)}}
    assert changed == downstream
    assert {"pretrain", "unlearn", "evaluate", "relearn"} <= changed
    assert not changed & {"data", "tokenizer"}  # upstream of the edit: kept
    # a run's key follows its stage's code
    edit("training/loop.py", "")
    a = Run.create("pretrain", "x", {"seed": 1})
    edit("training/loop.py", "\nEDITED = 1\n")
    b = Run.create("pretrain", "x", {"seed": 1})
    assert a.path != b.path and b.config["stage code"] == stages.stage_digest("pretrain")


def test_comments_and_docstrings_are_not_code(edit):
    before = _digests()
    edit("core.py", '\n# a comment\ndef _f():\n    """A docstring."""\n')
    with_prose = _digests()
    edit("core.py", '\n# another comment\ndef _f():\n    """Another docstring."""\n')
    assert _digests() == with_prose != before  # the function is code; its prose is not


def test_every_run_the_package_creates_names_a_stage_and_every_listed_file_exists():
    for stage in stages.STAGES.values():
        for f in stage.code:
            assert (stages.PACKAGE / f).is_file(), (stage.name, f)
        assert set(stage.inputs) <= set(stages.STAGES)
    named = set()
    for f in stages.PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "create":
                if getattr(node.func.value, "id", "") != "Run":
                    continue
                kw = {k.arg: k.value for k in node.keywords}
                stage = kw.get("stage", node.args[0] if node.args else None)
                assert isinstance(stage, ast.Constant), f"{f}: a run's stage must be written out"
                named.add(stage.value)
    assert named and named <= set(stages.STAGES), named - set(stages.STAGES)


def test_one_grid_call_splits_each_corpus_once_and_builds_each_runs_key_once(tiny, monkeypatch):
    p = tiny.replace(
        grid_lrs=(1e-3,),
        grid_seeds=(42, 43),
        grid_sophia_methods=(),
        grid_seed_methods=("ga",),
    )
    splits, keys = collections.Counter(), collections.Counter()
    load, split, create = corpus._load_verified, corpus.split_documents, Run.create.__func__

    def counted_load(path):
        out = load(path)
        if path.parent.name == "data" and out is not None:
            splits[path.name.split("-")[0]] += 1
        return out

    def counted_split(docs, data, seed, domain, *rest):
        splits[domain] += 1
        return split(docs, data, seed, domain, *rest)

    def counted_create(cls, kind, name, config, stage=None):
        run = create(cls, kind, name, config, stage)
        keys[run.path.relative_to(ul.home()).as_posix()] += 1
        return run

    monkeypatch.setattr(corpus, "_load_verified", counted_load)
    monkeypatch.setattr(corpus, "split_documents", counted_split)
    monkeypatch.setattr(Run, "create", classmethod(counted_create))
    ul.grid_frame(p, domains=["books"], progress=False, methods=["ga"])
    assert set(splits) == {*ul.DOMAINS, "general"} and set(splits.values()) == {1}, splits
    stages_made = {k.split("/")[0] for k in keys}
    assert {"tokenizer", "pretrain", "unlearn", "evaluate"} <= stages_made
    assert max(keys.values()) == 1, [k for k, v in keys.items() if v > 1]
    # a run deleted in between (runs clean) is made again, not taken from memory
    original = ul.pretrain(p, progress=False)
    shutil.rmtree(original.path)
    again = ul.pretrain(p, progress=False)
    assert again.path == original.path and again.done


@contextlib.contextmanager
def _upstream_fails(*targets):
    """Count the runs made inside (kind -> count, yielded) while every ``(module, name)``
    of ``targets`` raises: what a stage given its inputs must never call."""
    made = collections.Counter()
    create = Run.create.__func__

    def counted_create(cls, kind, name, config, stage=None):
        made[kind] += 1
        return create(cls, kind, name, config, stage)

    def upstream(*args, **kwargs):
        raise AssertionError("a stage walked upstream")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Run, "create", classmethod(counted_create))
        for module, name in targets:
            patch.setattr(module, name, upstream)
        yield made


def test_the_unlearning_stage_reads_its_inputs_and_walks_nothing_upstream(tiny):
    """An entry point resolves the unlearning stage's inputs once (the original, its row,
    the documents); a run of the stage gets those, never the profile, and makes no
    upstream run, splits no corpus and evaluates no original; its key is the entry
    point's, and the inputs travel to a worker process (pickled) unchanged."""
    import pickle

    from llmunlearn.unlearning import runner

    inputs = runner.unlearning_inputs(tiny, "books")
    for f in dataclasses.fields(inputs):
        assert not isinstance(getattr(inputs, f.name), ul.Profile), f.name
    sent = pickle.loads(pickle.dumps(runner.with_threads(inputs, 2)))
    assert sent.execution.threads == max(1, tiny.threads // 2)
    assert sent.splits == inputs.splits and sent.original == inputs.original

    with _upstream_fails(
        (corpus, "split_documents"),
        (corpus, "_load_verified"),
        (runner, "pretrain"),
        (runner, "zoo_evaluation"),
        (runner, "domain_sets"),
    ) as made:
        run = runner.unlearning_run(sent, "ga_gd_in", steps=2, progress=False)
    assert run.done and run.summary["status"] == "finished"
    assert made == {"unlearn": 1}, made
    assert ul.unlearn(tiny, "books", "ga_gd_in", steps=2, plan_only=True).path == run.path
    step0 = {k: v for k, v in run.summary["evals"][0].items() if k not in ("step", "tokens")}
    assert step0 == inputs.reference  # step 0: the resolved row


def test_the_pretraining_and_evaluation_stages_read_their_inputs_only(tiny):
    """The pre-training stage (a retrained model, its base included) and a zoo model's
    evaluation get inputs resolved once (documents, tokenizer run, config parts): with the
    data and tokenizer stages made to fail, they still run, make only their own runs, and
    key them as the entry points do."""
    from llmunlearn import evaluation
    from llmunlearn.training import pretraining

    inputs = pretraining.pretraining_inputs(tiny)
    sets = evaluation.domain_sets(tiny, "github")
    for record in (inputs, sets):
        hash(record)  # a key of runs.once
        for f in dataclasses.fields(record):
            assert not isinstance(getattr(record, f.name), ul.Profile), f.name
    with _upstream_fails(
        (corpus, "split_documents"),
        (corpus, "_load_verified"),
        (pretraining, "tokenizer_run"),
        (pretraining, "all_splits"),
    ) as made:
        run = pretraining.pretraining_run(inputs, without="github", progress=False)
        row = evaluation.zoo_evaluation(sets, run)
    assert run.done and "ppl_forget" in row
    late = tiny.pretrain_order == "late"
    assert made == {"pretrain": 1 + late, "evaluate": 1}, made  # the late order's base too
    assert ul.pretrain(tiny, without="github", plan_only=True).path == run.path
    assert ul.evaluate_reference(tiny, "github", run) == row


def test_the_pipeline_table_lists_every_stage_with_its_digest():
    table = stages.pipeline_table()
    assert list(table.index) == list(stages.STAGES)
    assert (table["digest"].str.len() == 16).all()
    assert Path(stages.__file__).name == "stages.py"


def test_runs_clean_code_changed_finds_the_runs_of_an_edited_stage(edit, capsys):
    kept = Run.create("tokenizer", "t", {"vocab": 1})
    kept.finish({})
    stale = Run.create("pretrain", "p", {"seed": 1})
    stale.finish({})
    edit("training/loop.py", "\nEDITED = 1\n")
    assert cli.main(["runs", "clean", "--code-changed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {stale.path}" in out and str(kept.path) not in out
    assert runs.read_json(stale.path / "config.json")["stage"] == "pretrain"


def test_each_stage_names_the_profile_parts_its_keys_hold():
    from llmunlearn.config import PARTS, get_profile, pretrain_config, profile_config

    p = get_profile("cpu")
    assert set(pretrain_config(p)) - {"seed"} == set(stages.STAGES["pretrain"].parts)
    assert set(profile_config(p)) - {"name", "seed"} == set(stages.STAGES["unlearn"].parts)
    for stage in stages.STAGES.values():
        assert set(stage.parts) <= set(PARTS) - {"grid", "execution"}, stage.name
