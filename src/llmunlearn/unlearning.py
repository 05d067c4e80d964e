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

from .config import Profile
from .data import chunk_documents, load_splits
from .methods import get_method
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


def select_step(evals: list[dict], target: float) -> dict:
    """The selection rule, the same for every method: the first evaluated step whose
    forget perplexity reaches ``target`` (the original model's approximate perplexity,
    the paper's approximate-retraining reference); if none does, the last step."""
    for row in evals:
        if row["step"] > 0 and row["ppl_forget"] >= target:
            return {**row, "reached_target": True}
    return {**evals[-1], "reached_target": False}


def unlearn(profile: Profile, domain: str, method: str, *, lr: float | None = None,
            steps: int | None = None, original: Run | None = None,
            progress: bool = True) -> Run:
    """Run (or reuse) ``method`` on ``domain``'s forget set; returns its :class:`Run`.

    ``summary.json`` holds ``status``, ``evals`` (one row per evaluated step),
    ``target`` (approximate-retraining perplexity), ``selected`` (:func:`select_step`),
    ``tokens``, ``flops`` (6 x parameters x trained tokens) and ``wall_s``.
    """
    import torch

    spec = get_method(method)
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
        "original": original.path.name, "train": dataclasses.asdict(cfg)})
    if run.done:
        return run

    torch.set_num_threads(profile.threads)
    model, tokenizer = load_original(original)
    chunks = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
              for s, docs in load_splits(domain, profile).items()}
    general = {s: chunk_documents(tokenizer, docs, profile.chunk_len)
               for s, docs in load_splits("general", profile).items()}
    streams = {"forget": chunks["forget"]}
    if spec.retain is not None:
        streams["retain"] = chunks["retain"] if spec.retain == "in" else general["retain"]
    evaluated = {s: fixed_sample(c, profile.eval_chunks, profile.seed) for s, c in
                 [*chunks.items(), ("general", general["evaluation"])]}
    ref = None
    if spec.needs_reference:
        ref, _ = load_original(original)
        ref.eval().requires_grad_(False)

    def on_eval(m, step):
        row = {}
        for split, c in evaluated.items():
            res = perplexity(m, c)
            row[f"ppl_{split}"], row[f"acc_{split}"] = res["ppl"], res["acc"]
        if not all(math.isfinite(v) for v in row.values()):
            raise Diverged(f"perplexity overflow at step {step}")
        return row

    result = train(model, lambda m, b: spec.loss(m, b, ref), streams, cfg, run.path,
                   on_eval=on_eval, eval_every=profile.eval_every,
                   desc=f"{method} on {domain}", progress=progress)
    target = result["evals"][0]["ppl_approximate"]
    if result["status"] == "finished":
        result["model"].save_pretrained(run.path / "model")
        tokenizer.save_pretrained(run.path / "model")
    n = sum(p.numel() for p in result["model"].parameters())
    run.finish({
        "status": result["status"], "evals": result["evals"], "log": result["log"],
        "target": target, "selected": select_step(result["evals"], target),
        "tokens": result["tokens"], "flops": 6 * n * result["tokens"],
        "wall_s": result["wall_s"]})
    return run
