"""Your model, your text: one unlearning run, or one evaluation, on sets you give (issue 36).

``llmunlearn unlearn --model M --forget P --retain P --approximate P [--general P]`` and
``llmunlearn evaluate --model M --forget P --approximate P [--retain P] [--general P]``
call :func:`unlearn_own` and :func:`evaluate_own`. ``M`` is a checkpoint folder or a hub id
(any tokenizer transformers loads); each ``P`` a folder of text files, a JSONL file or a
``datasets`` folder or hub id (:mod:`llmunlearn.data.own`). Everything is checked before
anything is written: the sets (text, non-empty, forget disjoint from approximate and
retain), the model (a complete safetensors checkpoint, its tokenizer, its context against
the chunk length), the method and its numbers.

An unlearning run is the book's own runner (:func:`~llmunlearn.unlearning.runner.unlearn`)
on a profile pointed at your model and your sets (:func:`~llmunlearn.config.model_profile`):
the same loop, evaluation, selection rule and ``summary.json`` as every run of the book.
The evaluation gives the perplexity of every set and every membership-inference attack's
AUC with a 95 % interval over documents, forget (members) against approximate
(non-members).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Profile, check_int, model_profile
from ..data.corpus import chunk_documents, domain_splits
from ..data.own import OWN_DOMAIN, general_splits, own_dataset, own_sets
from ..evaluation import evaluate_model
from ..models import check_context, check_model_source, load_model, weights_digest
from ..runs import Run, config_hash
from ..unlearning.runner import check_run_args, unlearn


def own_inputs(
    profile: Profile, model, forget, approximate, retain=None, general=None, chunk_len=None
) -> tuple[str, int, dict, dict]:
    """Every input checked, nothing written: ``(model, chunk_len, sets, general)`` with the
    model as a resolved folder or hub id, the sets read (:func:`~llmunlearn.data.own.own_sets`)
    and the general set cut into ``retain`` and ``evaluation`` (the book's own general text
    when none is given)."""
    chunk_len = profile.chunk_len if chunk_len is None else check_int("chunk length", chunk_len, 8)
    sets = own_sets(forget, approximate, retain, general)
    model = check_model_source(model, chunk_len)
    if "general" in sets:
        gen = general_splits(sets.pop("general"), profile.seed)
    else:
        book = domain_splits("general", profile.replace(dataset="local"))
        gen = {s: book[s] for s in ("retain", "evaluation")}
    return model, chunk_len, sets, gen


def unlearn_own(
    profile: Profile,
    model,
    forget,
    retain,
    approximate,
    general=None,
    *,
    method: str = "ga",
    lr: float | None = None,
    steps: int | None = None,
    batch: int | None = None,
    chunk_len: int | None = None,
    optimizer: str = "adamw",
    seed: int | None = None,
    hparams: dict | None = None,
    progress: bool = True,
) -> Run:
    """``method`` on ``model`` with your forget set, regularised (where the method is) on
    your retain set and general set; ``lr``, ``steps`` and ``batch`` (forget chunks per
    step) default to the profile's. Returns the run (its ``summary.json``: the evaluated
    steps with forget, approximate, retain and general perplexity, the selected step)."""
    check_run_args(method, hparams, lr, steps, seed, optimizer)  # before the data are written
    if batch is not None:
        check_int("batch", batch, 1)
    model, chunk_len, sets, gen = own_inputs(
        profile, model, forget, approximate, retain, general, chunk_len
    )
    steps = steps or profile.unlearn_steps
    p = model_profile(
        profile,
        model,
        own_dataset(sets, gen),
        chunk_len=chunk_len,
        unlearn_lr=lr or profile.unlearn_lr,
        unlearn_steps=steps,
        unlearn_batch=batch or profile.unlearn_batch,
        eval_every=min(profile.eval_every, steps),
    )
    return unlearn(
        p,
        OWN_DOMAIN,
        method,
        optimizer=optimizer,
        seed=seed,
        hparams=hparams,
        progress=progress,
    )


def evaluate_own(
    profile: Profile, model, forget, approximate, retain=None, general=None, chunk_len=None
) -> Run:
    """Every metric of ``model`` on your sets (:func:`~llmunlearn.evaluation.evaluate_model`
    without references: perplexity per set, every attack's AUC with its interval,
    verbatim memorisation of the forget set, the multiple-choice battery on the general
    set), cached by the weights and the documents. ``summary.json`` also holds
    ``ppl_forget`` and ``ppl_approximate`` at its top."""
    model, chunk_len, sets, gen = own_inputs(
        profile, model, forget, approximate, retain, general, chunk_len
    )
    docs = {s: [d.sha256 for d in v] for s, v in {**sets, "general": gen["evaluation"]}.items()}
    weights = weights_digest(model) if Path(model).is_dir() else model
    run = Run.create(
        "evaluate",
        f"own-{config_hash({'model': model, 'weights': weights})[:8]}",
        {
            "model": model,
            "weights": weights,
            "documents": config_hash(docs),
            "chunk_len": chunk_len,
            "seed": profile.seed,
        },
        stage="own",
    )
    if run.done:
        return run
    m, tokenizer = load_model(model)
    check_context(m, chunk_len)
    chunks = {s: chunk_documents(tokenizer, v, chunk_len) for s, v in sets.items()}
    chunks["general"] = chunk_documents(tokenizer, gen["evaluation"], chunk_len)
    p = profile.replace(chunk_len=chunk_len)
    result = evaluate_model(m, tokenizer, chunks, {}, profile=p, intervals=True)
    ppl = result["perplexity"]
    run.finish({**{f"ppl_{s}": ppl[s]["ppl"] for s in ppl}, **result})
    return run


def own_study(
    profile: Profile,
    model,
    forget,
    approximate,
    retain,
    general=None,
    *,
    methods=("ga",),
    lr: float | None = None,
    steps: int | None = None,
    batch: int | None = None,
    chunk_len: int | None = None,
    progress: bool = True,
) -> dict:
    """Your model and your sets, as the real-LLM chapter runs them: ``evaluation`` (the
    model before unlearning, :func:`evaluate_own`), ``attacks`` (every membership attack's
    AUC with its 95 % interval, your forget set against your approximate set), ``runs``
    (each of ``methods`` by :func:`unlearn_own`) and ``table`` (:func:`own_table`). Every
    method and number is checked, and every set read, before anything trains."""
    methods = list(methods)
    if not methods:
        raise ValueError("methods must name at least one method, got none")
    for m in methods:
        check_run_args(m, None, lr, steps, None, "adamw")
    if batch is not None:
        check_int("batch", batch, 1)
    # reads and checks every set and the model before anything is written or trained
    evaluation = evaluate_own(profile, model, forget, approximate, retain, general, chunk_len)
    runs = {
        m: unlearn_own(
            profile,
            model,
            forget,
            retain,
            approximate,
            general,
            method=m,
            lr=lr,
            steps=steps,
            batch=batch,
            chunk_len=chunk_len,
            progress=progress,
        )
        for m in methods
    }
    mia = evaluation.summary["mia"]
    attacks = pd.DataFrame(
        {
            name: {"AUC": r["auc"], "low": r["ci_low"], "high": r["ci_high"]}
            for name, r in mia.items()
            if isinstance(r, dict) and "auc" in r
        }
    ).T.rename_axis("attack")
    return {"evaluation": evaluation, "attacks": attacks, "runs": runs, "table": own_table(runs)}


def own_table(runs: dict[str, Run]) -> pd.DataFrame:
    """One row for your model before unlearning and one per method at its selected step
    (the book's selection rule): the step, forget, approximate, retain and general
    perplexity, forget over the target (your model's approximate perplexity: the paper's
    approximate retraining), the Min-K% AUC and whether the target was reached."""
    first = next(iter(runs.values())).summary
    rows = {"your model": {**first["evals"][0], "reached_target": False}}
    rows.update({m: run.summary["selected"] for m, run in runs.items()})
    return pd.DataFrame(
        {
            name: {
                "step": r.get("step", 0),
                "forget": r["ppl_forget"],
                "approximate": r["ppl_approximate"],
                "retain": r["ppl_retain"],
                "general": r["ppl_general"],
                "forget / target": r["ppl_forget"] / first["target"],
                "AUC": r["auc"],
                "reached": bool(r.get("reached_target", False)),
            }
            for name, r in rows.items()
        }
    ).T.rename_axis("model")
