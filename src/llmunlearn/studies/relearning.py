"""Relearning: was the forget set removed, or only hidden?

A model is fine-tuned for a few steps on a fixed part of the forget set (whole documents,
:func:`relearn_split`) and measured along the way on the *other* forget documents: their
perplexity and the membership-inference AUC (held-out forget chunks against approximate
chunks). The exact retrained model never saw the forget set, so its curve is how fast
relearning goes when the knowledge is gone; an unlearned model whose held-out forget
perplexity falls back faster than the retrained model's had the knowledge hidden, not
removed. The original model's held-out perplexity is the level "back".
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pandas as pd

from ..config import DOMAINS, Profile, check_choice, check_int, check_positive
from ..core import nll_loss
from ..data.corpus import fixed_sample
from ..evaluation import evaluation_config, evaluation_row, load_folder
from ..progress import progress_bar as tqdm
from ..runs import Run
from ..training.loop import TrainConfig, train
from ..unlearning.runner import domain_models

MARGIN = 0.10
"""A model has relearned when its held-out forget perplexity is at most this much above
the original model's (fixed before the runs)."""


def relearn_split(doc_ids: list[str], fraction: float, seed: int) -> tuple[list, list]:
    """Chunk indices to relearn on and to measure on, split by whole documents (no
    document has chunks on both sides): documents in a seeded order are taken for
    relearning until they hold at least ``fraction`` of the chunks. A fraction outside
    (0, 1) or a forget set that leaves either side empty is a ``ValueError``."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"relearning fraction must be in (0, 1), got {fraction!r}")
    docs = sorted(set(doc_ids))
    random.Random(seed).shuffle(docs)
    chosen, n = set(), 0
    for d in docs:
        if n >= fraction * len(doc_ids):
            break
        chosen.add(d)
        n += doc_ids.count(d)
    relearn = [i for i, d in enumerate(doc_ids) if d in chosen]
    held = [i for i, d in enumerate(doc_ids) if d not in chosen]
    if not relearn or not held:
        raise ValueError(
            f"the forget set ({len(docs)} document(s), {len(doc_ids)} chunks) is "
            f"too small to split into relearning and held-out parts at fraction "
            f"{fraction}: each side needs at least one whole document"
        )
    return relearn, held


def _held_out_evaluation(profile: Profile, heldout, approximate):
    """A relearning run's ``on_eval``: the held-out forget documents' perplexity, the
    model's own approximate perplexity and the Min-K% AUC, on fixed samples of each."""
    sets = {
        "forget": fixed_sample(heldout, profile.eval_chunks, profile.seed),
        "approximate": fixed_sample(approximate, profile.eval_chunks, profile.seed),
    }

    def on_eval(m, step, save):
        row = evaluation_row(m.eval(), sets, profile.seed)
        m.train()
        return {
            "ppl_heldout": row["ppl_forget"],
            "ppl_approximate": row["ppl_approximate"],
            "auc": row["auc"],
        }

    return on_eval


def relearn_model(
    profile: Profile,
    domain: str,
    model_path,
    *,
    fraction: float = 0.25,
    steps: int = 12,
    lr: float | None = None,
    eval_every: int = 4,
    seed: int | None = None,
    progress: bool = False,
):
    """Fine-tune the model in ``model_path`` on ``fraction`` of ``domain``'s forget
    documents for ``steps`` steps at ``lr`` (default: the profile's unlearning learning
    rate) and batch ``profile.unlearn_batch``, measuring the held-out forget documents
    every ``eval_every`` steps (cached :class:`~llmunlearn.runs.Run`). ``summary.json``
    holds ``evals``: step, ``ppl_heldout``, ``ppl_approximate`` (the model's own, on an
    approximate sample), ``auc`` (Min-K% 0.3, held-out forget chunks
    against as many approximate chunks) and ``n_relearn`` / ``n_heldout`` chunks."""

    check_choice("domain", domain, DOMAINS)
    lr = profile.unlearn_lr if lr is None else lr
    check_positive("relearning learning rate", lr)
    check_int("relearning steps", steps, 1)
    check_int("eval_every", eval_every, 1)
    seed = profile.seed if seed is None else check_int("seed", seed, 0)
    model_path = Path(model_path).resolve()
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        batch=profile.unlearn_batch,
        micro_batch=min(profile.unlearn_batch, profile.unlearn_micro_batch),
        seed=seed,
    )
    run = Run.create(
        "relearn",
        f"{profile.name}-{domain}-{model_path.parent.name}",
        {
            "profile": evaluation_config(profile),
            "domain": domain,
            "model": str(model_path),
            "fraction": fraction,
            "eval_every": eval_every,
            "train": dataclasses.asdict(cfg),
            "row": 2,  # 2: the model's own approximate perplexity at every step
        },
    )
    if run.done:
        return run
    model, tokenizer, chunks, _ = load_folder(profile, domain, model_path)
    forget = chunks["forget"]
    part, held = relearn_split(list(forget["doc_id"]), fraction, profile.seed)
    result = train(
        model,
        lambda m, b: nll_loss(m, b["relearn"]),
        {"relearn": forget.select(part)},
        cfg,
        run.path,
        on_eval=_held_out_evaluation(profile, forget.select(held), chunks["approximate"]),
        eval_every=eval_every,
        desc=f"relearn {model_path.parent.name}",
        progress=progress,
    )
    run.finish(
        {
            "status": result["status"],
            "evals": result["evals"],
            "n_relearn": len(part),
            "n_heldout": len(held),
            "heldout_docs": sorted(set(forget.select(held)["doc_id"])),
            "relearn_docs": sorted(set(forget.select(part)["doc_id"])),
            "wall_s": result["wall_s"],
        }
    )
    return run


def relearn_domain(
    profile: Profile,
    domain: str,
    zoo: dict | None = None,
    methods=None,
    seeds=None,
    seed_models=("original", "retrained", "ga", "ga_gd_in"),
    progress: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """:func:`relearn_model` for the original model, the domain's exact retrained model and
    every method's selected model (the unlearning chapter's runs), at the first of
    ``seeds`` (default: the profile's grid seeds) and, for ``seed_models``, at every seed.
    Returns a tidy frame: domain, model, seed, step, ppl_heldout, auc, and
    ``ppl_rel`` (over the original model's held-out perplexity before relearning)."""

    seeds = list(seeds or profile.grid_seeds)
    models = domain_models(profile, domain, zoo, methods, progress=False)
    jobs = [
        (name, path, s)
        for name, path in models.items()
        for s in seeds
        if s == seeds[0] or name in seed_models
    ]
    rows = []
    with tqdm(jobs, desc=f"relearning {domain}", unit="model", disable=not progress) as bar:
        for name, path, s in bar:
            bar.set_postfix_str(f"{name} seed={s}", refresh=False)
            run = relearn_model(profile, domain, path, seed=s, **kwargs)
            for e in run.summary["evals"]:
                rows.append(
                    {
                        "domain": domain,
                        "model": name,
                        "seed": s,
                        "step": e["step"],
                        "ppl_heldout": e["ppl_heldout"],
                        "ppl_approximate": e.get("ppl_approximate", float("nan")),
                        "auc": e["auc"],
                        "status": run.summary["status"],
                    }
                )
    frame = pd.DataFrame(rows)
    base = frame[(frame["model"] == "original") & (frame["step"] == 0)]["ppl_heldout"].iloc[0]
    frame["ppl_rel"] = frame["ppl_heldout"] / base
    return frame


def steps_to_recover(frame: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Per domain, model and seed: the first evaluated step at which held-out forget
    perplexity is back within ``margin`` of the original model's (``ppl_rel`` <= 1 +
    margin; NaN if never within the budget), the held-out perplexity before and after
    relearning, and the same for the exact retrained model for comparison
    (``vs retrained``: this model's steps minus the retrained model's; negative means
    it relearns faster than a model that never saw the data)."""
    rows = []
    for (domain, model, seed), g in frame.groupby(["domain", "model", "seed"], sort=False):
        g = g.sort_values("step")
        back = g[g["ppl_rel"] <= 1 + margin]["step"]
        rows.append(
            {
                "domain": domain,
                "model": model,
                "seed": seed,
                "steps to recover": float(back.min()) if len(back) else float("nan"),
                "ppl before": g["ppl_rel"].iloc[0],
                "ppl after": g["ppl_rel"].iloc[-1],
                "AUC before": g["auc"].iloc[0],
                "AUC after": g["auc"].iloc[-1],
                "own ratio after": g["ppl_heldout"].iloc[-1] / g["ppl_approximate"].iloc[-1]
                if {"ppl_heldout", "ppl_approximate"} <= set(g.columns)
                else float("nan"),
            }
        )
    out = pd.DataFrame(rows)
    ref = out[out["model"] == "retrained"].groupby("domain")["ppl after"].mean()
    out["ppl after / retrained's"] = out["ppl after"] / out["domain"].map(ref)
    own = out[out["model"] == "retrained"].groupby("domain")["own ratio after"].mean()
    out["own ratio after / retrained's"] = out["own ratio after"] / out["domain"].map(own)
    return out.set_index(["domain", "model", "seed"])


HIDDEN = 1 / 1.2
"""A method's knowledge came back when, after relearning, its held-out forget perplexity
over its *own* approximate perplexity is below this fraction of the exact retrained model's same
ratio after the same relearning (the referee's band of
:data:`llmunlearn.studies.robustness.FORGET_BAND`, 1.2; fixed before the runs of this design).
Within each model, so that an unlearner that made the whole domain harder (an approximate unlearner
whose forget perplexity sits above the retrained model's) is not flagged for it."""


def hidden_knowledge(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Per (domain, method), means over seeds of :func:`steps_to_recover` (the original
    and the retrained model left out): ``unlearned`` whether the method had moved the
    held-out forget perplexity more than ``margin`` above the original's before
    relearning (a method that never unlearned has nothing to hide), and ``hidden``
    whether it unlearned and relearning then brought its own held-out forget over
    approximate perplexity below :data:`HIDDEN` of the retrained model's (the held-out
    perplexity over the retrained model's where a run has no approximate perplexity)."""
    mean = table.groupby(["domain", "model"], sort=False).mean()
    out = mean.drop(index=["original", "retrained"], level="model", errors="ignore").copy()
    out["unlearned"] = out["ppl before"] > 1 + margin
    ratio = out["own ratio after / retrained's"].fillna(out["ppl after / retrained's"])
    out["hidden"] = out["unlearned"] & (ratio < HIDDEN)
    return out
