"""The unlearning runner: one method, one domain, one budget, evaluated along the way.

Every method starts from the original model and is trained with the one loop in
:mod:`llmunlearn.train`. Perplexity on forget / approximate / retain and general
(general/evaluation) is recorded at step 0 (the original model) and every ``eval_every``
steps, each on a fixed sample of at most ``eval_chunks`` chunks. One selection rule serves every
method (:func:`select_step`). A run whose loss or perplexity stops being finite is
recorded with status ``diverged``: kept in the results, never presented as a result.
"""

from __future__ import annotations

import dataclasses
import math

from .config import DOMAINS, Profile, check_choice
from .data import chunk_documents, load_splits
from .methods import get_method, resolve_hparams
from .models import n_params
from .metrics import perplexity
from .pretraining import load_original, pretrain
from .runs import Run
from .train import Diverged, TrainConfig, train


def fixed_sample(chunks, n: int, seed: int):
    """At most ``n`` chunks, the same ones every time (seeded), in their original order."""
    if len(chunks) <= n:
        return chunks
    import random
    return chunks.select(sorted(random.Random(seed).sample(range(len(chunks)), n)))


def evaluation_sets(profile: Profile, chunks: dict, general: dict) -> dict:
    """What every model is evaluated on: forget / approximate / retain of the domain and
    general/evaluation (as ``general``), each a fixed sample of ``eval_chunks`` chunks."""
    return {s: fixed_sample(c, profile.eval_chunks, profile.seed) for s, c in
            [*chunks.items(), ("general", general["evaluation"])]}


def evaluation_row(model, sets: dict) -> dict:
    """``ppl_<split>`` and ``acc_<split>`` of ``model`` on each evaluation set."""
    row = {}
    for split, c in sets.items():
        res = perplexity(model, c)
        row[f"ppl_{split}"], row[f"acc_{split}"] = res["ppl"], res["acc"]
    return row


def evaluate_reference(profile: Profile, domain: str, model_run: Run) -> dict:
    """:func:`evaluation_row` of a model of the zoo (original, retrained) on ``domain``'s
    evaluation sets, the same chunks the unlearning runs are evaluated on (cached)."""
    import torch

    run = Run.create("evaluate", f"{profile.name}-{domain}-{model_run.path.name}",
                     {"profile": dataclasses.asdict(profile), "domain": domain,
                      "model": model_run.path.name})
    if not run.done:
        torch.set_num_threads(profile.threads)
        model, tokenizer = load_original(model_run)
        chunks = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
                  for s, docs in load_splits(domain, profile).items()}
        general = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
                   for s, docs in load_splits("general", profile).items()}
        run.finish(evaluation_row(model.eval(), evaluation_sets(profile, chunks, general)))
    return run.summary


def unlearn_all(profile: Profile, domain: str, methods=None, **kwargs) -> dict[str, Run]:
    """:func:`unlearn` for every method (or the ones named), same budget; method -> run."""
    from .methods import METHODS

    return {m: unlearn(profile, domain, m, **kwargs) for m in (methods or METHODS)}


def select_step(evals: list[dict], target: float) -> dict:
    """The selection rule, the same for every method: the first evaluated step whose
    forget perplexity reaches ``target`` (the original model's approximate perplexity,
    the paper's approximate-retraining reference); if none does, the last step."""
    for row in evals:
        if row["step"] > 0 and row["ppl_forget"] >= target:
            return {**row, "reached_target": True}
    return {**evals[-1], "reached_target": False}


def unlearn(profile: Profile, domain: str, method: str, *, lr: float | None = None,
            steps: int | None = None, hparams: dict | None = None,
            original: Run | None = None, progress: bool = True) -> Run:
    """Run (or reuse) ``method`` on ``domain``'s forget set; returns its :class:`Run`.

    ``summary.json`` holds ``status``, ``evals`` (one row per evaluated step),
    ``target`` (approximate-retraining perplexity), ``selected`` (:func:`select_step`),
    ``tokens``, ``flops`` (6 N per trained token, plus 2 N per token the frozen reference
    model reads) and ``wall_s``.
    """
    import torch

    check_choice("domain", domain, DOMAINS)
    spec = get_method(method)
    hp = resolve_hparams(spec, hparams)
    original = original or pretrain(profile, progress=progress)
    lr = profile.unlearn_lr if lr is None else lr
    steps = profile.unlearn_steps if steps is None else steps
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be a positive finite number, got {lr}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    cfg = TrainConfig(steps=steps, lr=lr, batch=profile.unlearn_batch,
                      micro_batch=profile.unlearn_batch, seed=profile.seed)
    run = Run.create("unlearn", f"{profile.name}-{domain}-{method}", {
        "profile": dataclasses.asdict(profile), "domain": domain, "method": method,
        "hparams": hp, "original": original.path.name, "train": dataclasses.asdict(cfg)})
    if run.done:
        return run

    torch.set_num_threads(profile.threads)
    model, tokenizer = load_original(original)
    ref = None
    if spec.needs_reference or spec.prepare is not None:
        ref, _ = load_original(original)
        ref.eval().requires_grad_(False)
    chunks = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
              for s, docs in load_splits(domain, profile).items()}
    general = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
               for s, docs in load_splits("general", profile).items()}
    forget = chunks["forget"]
    if spec.prepare is not None:
        forget = spec.prepare(forget, ref, tokenizer, profile.seed)
    streams = {"forget": forget}
    if spec.retain is not None:
        streams["retain"] = chunks["retain"] if spec.retain == "in" else general["retain"]
    evaluated = evaluation_sets(profile, chunks, general)

    def as_evaluated(m):
        return spec.evaluate_as(m, ref, hp) if spec.evaluate_as is not None else m

    def on_eval(m, step):
        row = evaluation_row(as_evaluated(m), evaluated)
        if not all(math.isfinite(v) for v in row.values()):
            raise Diverged(f"perplexity overflow at step {step}")
        return row

    result = train(model, lambda m, b: spec.loss(m, b, ref, hp), streams, cfg, run.path,
                   on_eval=on_eval, eval_every=profile.eval_every,
                   desc=f"{method} on {domain}", progress=progress)
    if not result["is_main_process"]:
        return run  # under `accelerate launch`, the main process writes the results
    target = result["evals"][0]["ppl_approximate"]
    if result["status"] == "finished":
        as_evaluated(result["model"]).save_pretrained(run.path / "model")
        tokenizer.save_pretrained(run.path / "model")
    n = n_params(result["model"])
    ref_tokens = result["tokens"] if spec.needs_reference else 0
    run.finish({
        "status": result["status"], "evals": result["evals"], "log": result["log"],
        "target": target, "selected": select_step(result["evals"], target),
        "tokens": result["tokens"], "flops": 6 * n * result["tokens"] + 2 * n * ref_tokens,
        "wall_s": result["wall_s"]})
    return run
