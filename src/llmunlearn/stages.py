"""The pipeline, stage by stage: what each stage computes, what it reads, which code decides it.

Read top to bottom, this is how the book is built (each arrow: "is read by")::

    sources ──► data ──► tokenizer ──► pretrain ──► unlearn ──► evaluate
                                          │            ├──────► relearn
                                          │            ├──────► quantise
                                          │            └──────► lm-eval
                                          ├──► groundtruth
                                          └──► real-llm (a real LLM's continued pre-training)
    own (your model and text) ──► evaluate / unlearn

An entry point (a chapter's study, the grid, the command line) resolves a stage's inputs
once and hands them to the stage's function, which reads its config parts, never the
profile:

- ``data``: :func:`~llmunlearn.data.corpus.split_domain` (a domain, the data part, the
  seed);
- ``tokenizer``: :func:`~llmunlearn.training.pretraining.bpe_run` (D minus every forget
  set, the vocabulary size);
- ``pretrain``: :func:`~llmunlearn.training.pretraining.pretraining_inputs` (every domain's
  documents, the tokenizer's run, the data, model and pre-training parts) ->
  :func:`~llmunlearn.training.pretraining.pretraining_run` and
  :func:`~llmunlearn.training.pretraining.pretrain_base`;
- ``evaluate`` (a zoo model): :func:`~llmunlearn.evaluation.domain_sets` (the domain's and
  general's documents, the parts an evaluation is keyed by) ->
  :func:`~llmunlearn.evaluation.zoo_evaluation` and
  :func:`~llmunlearn.evaluation.membership_evaluation`;
- ``unlearn``: :func:`~llmunlearn.unlearning.runner.unlearning_inputs` (the original's run,
  its evaluated row on the domain, the domain's and general's documents, the unlearning
  part) -> :func:`~llmunlearn.unlearning.runner.unlearning_run`, once per domain and
  original for a whole grid or every method.

``domain_splits(domain, profile)``, ``tokenizer_run(profile)``, ``pretrain(profile, ...)``,
``evaluate_reference(profile, domain, run)`` and ``unlearn(profile, ...)`` are those entry
points for one run. The studies (each chapter's tables) and the evaluation of a saved
model folder still take the profile.

Every run of a stage is a folder ``<home>/<folder>/<name>-<key>`` (:class:`~llmunlearn.runs.Run`).
Its key is a hash of three things:

1. **its config**: what the run computes (the profile's fields that matter to it, the
   method, learning rate, seed, the documents' digests). An input run is named in the config
   by its folder, whose name carries the input's key;
2. **the digest of its stage's code** (:func:`stage_digest`): the files listed for the stage
   below, read as code (:func:`code_digest`: comments and docstrings do not count), and
   the digests of the stages it reads, so an edited file gives new keys to its stage and to
   every stage downstream, and to nothing upstream;
3. for an unlearning run, the digest of its method's own file
   (:func:`~llmunlearn.unlearning.methods.method_digest`), so that editing one method
   re-runs that method's runs only (the methods' folder is therefore not in the ``unlearn``
   stage's files).

Left out of every digest on purpose: ``config.py`` (the profile's *values* are in each
config; its checks change nothing computed), ``runs.py`` and ``progress.py`` (bookkeeping and
progress bars), the report and the command line (they compute nothing cached).

``llmunlearn runs clean --code-changed`` deletes the runs whose stage's code changed since
they ran; the status page shows this table with each stage's digest.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

MEASUREMENT = (
    "measurement/metrics.py",
    "measurement/mia.py",
    "measurement/memorisation.py",
    "measurement/utility.py",
    "measurement/distance.py",
)
TRAINING = ("training/loop.py", "training/optim.py", "models.py", "core.py")


@dataclass(frozen=True)
class Stage:
    """One stage: ``name`` (what :meth:`Run.create <llmunlearn.runs.Run.create>` is told;
    for most stages also the home's folder of its runs), ``inputs`` (the stages it reads),
    ``code`` (the package's files whose code decides its output), ``what`` it computes and
    ``parts``: its typed config, the parts of the profile (:data:`~llmunlearn.config.PARTS`)
    its runs' keys hold; ``grid`` and ``execution`` never are."""

    name: str
    inputs: tuple[str, ...]
    code: tuple[str, ...]
    what: str
    parts: tuple[str, ...] = ()


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "data",
            (),
            ("data/corpus.py", "data/sources.py"),
            "each domain's documents from the registries, cut and split into forget, "
            "retain and approximate sets (JSON files under data/, keyed by the sources' "
            "digests and the sizes)",
            parts=("data",),
        ),
        Stage(
            "tokenizer",
            ("data",),
            ("training/pretraining.py",),
            "the byte-level BPE trained on D minus every forget set",
            parts=("data", "model"),
        ),
        Stage(
            "pretrain",
            ("data", "tokenizer"),
            ("training/pretraining.py", *TRAINING),
            "the base, the original and every exact retrained model (per seed and dose), "
            "with their perplexities",
            parts=("data", "model", "pretraining"),
        ),
        Stage(
            "unlearn",
            ("pretrain",),
            ("unlearning/runner.py", "evaluation.py", *TRAINING, *MEASUREMENT),
            "one method at one learning rate and seed on one original, evaluated at the "
            "profile's steps (the method's own file is keyed apart)",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "evaluate",
            ("pretrain", "unlearn"),
            ("evaluation.py", "models.py", "core.py", *MEASUREMENT),
            "every metric of one saved model on one domain (perplexities, membership "
            "scores and AUCs with intervals, utility)",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "groundtruth",
            ("pretrain", "evaluate"),
            ("studies/retraining.py",),
            "the retraining chapter's R and the retrained model's AUC per domain and design",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "relearn",
            ("unlearn",),
            ("studies/relearning.py", "evaluation.py", *TRAINING, *MEASUREMENT),
            "fine-tuning a model on part of its forget set again, evaluated per step",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "quantise",
            ("unlearn",),
            ("studies/quantisation.py", "evaluation.py", "models.py", *MEASUREMENT),
            "a model rounded to 4 and 8 bits, evaluated",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "lm-eval",
            ("unlearn",),
            ("studies/utility.py", "models.py"),
            "the utility battery through lm-evaluation-harness",
            parts=("data", "model", "pretraining", "unlearning"),
        ),
        Stage(
            "real-llm",
            ("data",),
            ("studies/real_llm.py", *TRAINING),
            "a real LLM's continued pre-training on injected members, and its exact twin",
            parts=("data", "model", "pretraining"),
        ),
        Stage(
            "own",
            (),
            ("data/own.py", "studies/own.py", "evaluation.py", "models.py", "core.py")
            + MEASUREMENT,
            "your model evaluated on your forget and approximate text",
            parts=("model", "unlearning"),
        ),
    )
}
"""Every stage, upstream first."""


def code_text(source: str) -> str:
    """What of a Python file's text is code: its syntax tree without docstrings (comments
    never reach the tree), so that editing prose gives no new keys."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


def read_source(path: Path) -> str:
    """A file's text (one place, so that a test can stand in an edited file)."""
    return Path(path).read_text(encoding="utf-8")


def code_digest(files) -> str:
    """A digest of the code of ``files`` (paths; :func:`code_text` of each, in sorted order)."""
    h = hashlib.sha256()
    for f in sorted(str(f) for f in files):
        h.update(Path(f).name.encode())
        h.update(code_text(read_source(Path(f))).encode())
    return h.hexdigest()[:16]


@functools.cache
def _digest(name: str, sources: tuple) -> str:
    stage = STAGES[name]
    h = hashlib.sha256(code_digest(PACKAGE / f for f in stage.code).encode())
    for upstream in stage.inputs:
        h.update(_digest(upstream, sources).encode())
    return h.hexdigest()[:16]


def code_state() -> tuple:
    """The package's Python files with their modification times: what keys the per-process
    caches of :func:`stage_digest` and :func:`~llmunlearn.runs.once`, so that an edit made
    while a process runs (in JupyterLab) is seen by the next call."""
    return tuple((str(f), f.stat().st_mtime_ns) for f in sorted(PACKAGE.rglob("*.py")))


def stage_digest(name: str) -> str:
    """The digest of stage ``name``'s code and, through their digests, of every stage
    upstream of it (cached per process for the files' current text)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return _digest(name, code_state())


def upstream(name: str) -> list[str]:
    """Every stage ``name`` reads, directly or not, upstream first."""
    out: list[str] = []

    def visit(n):
        for i in STAGES[n].inputs:
            visit(i)
            if i not in out:
                out.append(i)

    visit(name)
    return out


def pipeline_table():
    """The stages as rows (stage, reads, code files, digest): the status page's table."""
    import pandas as pd  # the foundation layer keeps pandas out of its import time

    return pd.DataFrame(
        [
            {
                "stage": s.name,
                "reads": ", ".join(s.inputs) or "(sources)",
                "computes": s.what,
                "config": ", ".join(s.parts),
                "code": ", ".join(s.code),
                "digest": stage_digest(s.name),
            }
            for s in STAGES.values()
        ]
    ).set_index("stage")
