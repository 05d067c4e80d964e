"""Downstream tasks through lm-evaluation-harness (``pip install 'llmunlearn[lmeval]'``).

The paper reports downstream utility but never released the scripts, so the suite is
ours to choose and state: :data:`SUITE`, zero-shot unless asked otherwise, lm-eval's own
metric names (``acc``, ``acc_norm``, with standard errors). Tasks run through lm-eval's
Hugging Face adapter (``HFLM``) on the model object we load, so any folder the runner
writes (an unlearned model, a zoo model) or a hub id such as ``01-ai/Yi-6B`` is evaluated
the same way.

Our small models score at chance on those suites, so the book runs the utility battery
of :mod:`llmunlearn.evaluation` (pick a passage's true continuation among four) written
as a *local* lm-eval task (:func:`battery_task`, name :data:`BATTERY`). That needs no
network, and it is a cross-check: lm-eval re-tokenises the decoded text and scores it
with its own code, so its ``acc`` must agree with ours on the same items. Every run of
:func:`lm_eval_run` that includes the battery records both and how often their choices
agree.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import json
import re
from pathlib import Path

import torch

from ..config import Profile, profile_config
from ..data.corpus import chunked_splits
from ..evaluation import evaluation_sets
from ..measurement.utility import multiple_choice_scores, utility_items
from ..models import load_model
from ..progress import progress_bar as tqdm
from ..runs import Run
from ..unlearning.runner import domain_models

SUITE = ("mmlu", "arc_challenge", "arc_easy", "hellaswag", "piqa", "winogrande", "boolq")
"""Downstream tasks for real LLMs (they download their data from the hub): knowledge
(MMLU, the example the paper's authors name), science questions (ARC), commonsense
(HellaSwag, PIQA, WinoGrande) and reading (BoolQ)."""

BATTERY = "llmunlearn_battery"
"""The local task: our multiple-choice battery on held-out general text (chance 0.25)."""

ALIASES = {"suite": SUITE, "battery": (BATTERY,)}
"""Short names accepted wherever tasks are named."""


def require_lm_eval():
    """Import lm_eval, or say how to install it."""
    try:
        import lm_eval
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "lm-evaluation-harness is not installed; install the extra with "
            "pip install 'llmunlearn[lmeval]' (make test and make book include it)"
        ) from e
    return lm_eval


def expand_tasks(tasks) -> list[str]:
    """Task names from a comma-separated string or a list; ``suite`` and ``battery``
    expand to :data:`SUITE` and :data:`BATTERY`. Order kept, duplicates dropped."""
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    names = []
    for t in (t.strip() for t in tasks):
        for name in ALIASES.get(t, (t,)):
            if name and name not in names:
                names.append(name)
    if not names:
        raise ValueError("no lm-eval task named; give task names, 'battery' or 'suite'")
    return names


def battery_task(items, tokenizer, folder) -> Path:
    """Write multiple-choice ``items`` (from :func:`llmunlearn.evaluation.utility_items`)
    as the lm-eval task :data:`BATTERY` in ``folder``: the decoded context, the four
    decoded continuations appended with no separator, and the true one's index. Returns
    ``folder`` (pass it as ``include_path``)."""
    folder = battery_yaml(folder)
    with open(folder / "battery.jsonl", "w") as f:
        for ctx, options, answer in items:
            f.write(
                json.dumps(
                    {
                        "context": tokenizer.decode(ctx),
                        "choices": [tokenizer.decode(o) for o in options],
                        "label": answer,
                    }
                )
                + "\n"
            )
    return folder


def battery_yaml(folder) -> Path:
    """The task definition of :data:`BATTERY`, reading ``folder/battery.jsonl`` (written
    by :func:`battery_task`; the definition alone lets lm-eval index the task)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = (folder / "battery.jsonl").resolve()
    (folder / "battery.yaml").write_text(f"""\
# Written by llmunlearn.studies.utility: our utility battery as an lm-eval task.
task: {BATTERY}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {json.dumps(str(data))}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    return folder


@functools.lru_cache(maxsize=4)
def _index(include_path: str | None, include_defaults: bool):
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def request_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], int]:
    """The tokens lm-eval's HF adapter scores for a (context, continuation) request, as
    its documentation describes: trailing spaces of the context move to the continuation,
    the context is encoded alone, the pair is encoded whole, and the continuation is what
    follows the context's length in the whole. Returns ``(tokens, n_context)``."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    return ctx + whole[len(ctx) :], len(ctx)


def battery_check(items, tokenizer, our_scores, samples) -> dict:
    """lm-eval against us on the battery: accuracy of each, the share of items where both
    pick the same continuation, and the same on the items whose four continuations
    lm-eval scores as exactly our tokens (a decoded and re-encoded token sequence can
    come back as other tokens)."""
    ours = our_scores.argmax(1).tolist()
    theirs = {s["doc_id"]: max(range(4), key=s["loglik"].__getitem__) for s in samples}
    same_tokens = []
    for i in theirs:
        ctx, options, _ = items[i]
        text = tokenizer.decode(ctx)
        if all(
            request_tokens(tokenizer, text, tokenizer.decode(o))[0] == ctx.tolist() + o.tolist()
            for o in options
        ):
            same_tokens.append(i)
    n = len(theirs)
    return {
        "n": n,
        "ours": sum(ours[i] == items[i][2] for i in theirs) / n,
        "lm_eval": sum(c == items[i][2] for i, c in theirs.items()) / n,
        "same_choice": sum(ours[i] == c for i, c in theirs.items()) / n,
        "n_same_tokens": len(same_tokens),
        "same_choice_same_tokens": sum(ours[i] == theirs[i] for i in same_tokens)
        / max(len(same_tokens), 1),
    }


def task_manager(tasks, include_path=None):
    """lm-eval's task index, checked to hold every one of ``tasks``: only the local
    folder ``include_path`` when every task is there (indexing lm-eval's 14,000 built-in
    tasks takes ~13 s on 2 cores). Unknown names are an error listing close matches."""
    tasks = expand_tasks(tasks)
    include_path = str(Path(include_path).resolve()) if include_path else None
    local = _index(include_path, False) if include_path else None
    if local is not None and set(tasks) <= set(local.all_tasks):
        return local
    manager = _index(include_path, True)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        hints = {t: difflib.get_close_matches(t, manager.all_tasks, 4) for t in unknown}
        raise ValueError(
            "unknown lm-eval task(s): "
            + "; ".join(f"{t!r} (close: {', '.join(h) or 'none'})" for t, h in hints.items())
            + f"; {len(manager.all_tasks)} tasks exist (`lm-eval ls tasks` lists them), "
            "plus 'battery' and 'suite'"
        )
    return manager


def run_tasks(
    model, tokenizer, tasks, *, include_path=None, limit=None, num_fewshot=None, batch_size=16
) -> dict:
    """Evaluate an in-memory Hugging Face causal LM on lm-eval ``tasks``.

    Returns ``{"results": {task: {metric: value}}, "n_samples": {task: n}, "samples":
    {task: [{"doc_id", "target", "loglik": [...]}]}}`` (samples kept for multiple-choice
    tasks of at most 1,000 documents), plus lm-eval's version and the settings used.
    Metric keys drop lm-eval's ``,none`` filter suffix; a standard error lm-eval could not
    compute is ``None``.
    """
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    tasks = expand_tasks(tasks)
    manager = task_manager(tasks, include_path)  # the index is built once per process
    device = str(next(model.parameters()).device)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=batch_size)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=True,
    )
    results = {}
    for task, metrics in out["results"].items():
        results[task] = {}
        for key, value in metrics.items():
            if key in ("alias", "name", "sample_len"):
                continue
            key = re.sub(r",none$", "", key)
            results[task][key] = (
                float(value)
                if isinstance(value, (int, float))
                else None
                if value in ("N/A", None)
                else value
            )
    samples = {}
    for task, docs in (out.get("samples") or {}).items():
        if len(docs) <= 1000 and all(
            isinstance(d["resps"][0][0], (tuple, list)) for d in docs
        ):  # loglikelihood requests
            samples[task] = [
                {
                    "doc_id": d["doc_id"],
                    "target": d["target"],
                    "loglik": [float(r[0][0]) for r in d["resps"]],
                }
                for d in docs
            ]
    return {
        "results": results,
        "samples": samples,
        "n_samples": {t: v["effective"] for t, v in out.get("n-samples", {}).items()},
        "tasks": tasks,
        "limit": limit,
        "num_fewshot": num_fewshot,
        "lm_eval_version": lm_eval.__version__,
    }


def lm_eval_run(
    profile: Profile,
    model,
    tasks="battery",
    *,
    limit=None,
    num_fewshot=None,
    batch_size=16,
    quiet: bool = False,
) -> Run:
    """:func:`run_tasks` for the model in a folder (or a hub id), cached as a run of kind
    ``lm-eval``. With the battery, the profile's utility items are built with the model's
    own tokenizer from held-out general text (the items of ``llmunlearn evaluate``), and
    the summary's ``battery_check`` (:func:`battery_check`) compares lm-eval with
    :mod:`llmunlearn.evaluation` on them."""

    lm_eval = require_lm_eval()
    tasks = expand_tasks(tasks)
    path = Path(model)
    name = f"{path.parent.name}-{path.name}" if path.exists() else str(model).replace("/", "--")
    if path.exists():
        model = str(path.resolve())
    run = Run.create(
        "lm-eval",
        f"{profile.name}-{name}",
        {
            "profile": profile_config(profile),
            "model": str(model),
            "tasks": tasks,
            "limit": limit,
            "num_fewshot": num_fewshot,
            "lm_eval": lm_eval.__version__,
            "check": 2,
        },
    )  # version of battery_check's fields: runs with older ones are redone
    if run.done:
        return run
    # the task names are checked before a possibly large model is loaded
    folder = battery_yaml(run.path / "tasks") if BATTERY in tasks else None
    task_manager(tasks, folder)
    torch.set_num_threads(profile.threads)
    lm, tokenizer = load_model(model)
    lm.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    if BATTERY in tasks:
        # the held-out general sample every evaluation uses, so the items of `evaluate`
        general = evaluation_sets(
            profile.unlearning, profile.seed, {}, chunked_splits(profile, "general", tokenizer)
        )
        items = utility_items(profile, general["general"])
        battery_task(items, tokenizer, folder)
        scores = multiple_choice_scores(lm, items)

    # quiet: lm-eval's own bars and notices stay out of a chapter's output (the caller
    # shows one bar over the models)
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        result = run_tasks(
            lm,
            tokenizer,
            tasks,
            include_path=folder,
            limit=limit,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
        )
    check = (
        battery_check(items, tokenizer, scores, result["samples"][BATTERY])
        if BATTERY in tasks
        else None
    )
    run.finish({**result, "battery_check": check})
    return run


def lm_eval_domain(
    profile: Profile, domain: str, zoo: dict | None = None, tasks="battery", **kwargs
) -> dict[str, Run]:
    """:func:`lm_eval_run` for every model of
    :func:`llmunlearn.unlearning.runner.domain_models` (cached): name -> :class:`Run`."""

    out = {}
    with tqdm(
        domain_models(profile, domain, zoo, **kwargs).items(),
        unit="model",
        desc=f"lm-eval on {domain}'s models",
    ) as bar:
        for name, path in bar:
            bar.set_postfix_str(name)
            out[name] = lm_eval_run(profile, path, tasks, quiet=True)
    return out
