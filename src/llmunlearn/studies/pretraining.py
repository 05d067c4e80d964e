"""The pre-training chapter's pilot: a memorisation dose axis (issue 35).

As Hubble (Wei et al., ICLR 2026) did with its duplication levels, the forget sets are seen
``k`` times in the final slice of pre-training, for each dose ``k`` of the profile's
``pilot_doses`` (1, 2, 4, 8): every dose branches from the same base, and each has its own
exact retrained model per domain, whose forget chunks are *replaced* by replayed chunks (the
original and its retrained model take the same number of steps). Per dose and domain the
pilot measures:

- the memorisation gap M (the original's approximate / forget perplexity, whole sets);
- the original's Min-K% AUC (every forget chunk against every approximate chunk) with a 95 %
  interval over source documents;
- the paired difference between the original's AUC and its retrained model's on the same
  chunks (interval over source documents): the negative control of the membership rule
  fails when that interval is not inside the margin;
- R (the retrained model's forget perplexity over the original's approximate perplexity)
  with its interval over source documents, and claim 4's label at this dose
  (:func:`~llmunlearn.studies.decisions.stands_in`), so that the claim is decided at every
  dose;
- ``separable``: the difference's interval lies above the membership rule's equivalence
  margin (:data:`~llmunlearn.studies.decisions.AUC_MARGIN`): the original is shown to differ
  from the model that never saw its members by more than the rules tolerate, so the negative
  control fails by the size of the difference, not by the width of its interval;
- the *positive control* at this dose: the referee's sibling
  (:func:`~llmunlearn.training.pretraining.siblings`: the same base, its final slice drawn
  with another seed) judged against the referee by the forget rule
  (:func:`~llmunlearn.studies.decisions.forget_reached`) and the membership rule (paired AUC
  difference inside the margin). A dose where a model that never saw the data fails the
  rules cannot be used either: the rules would then reject the goal itself.

The rule, fixed before any method runs: the grid runs at the smallest dose separable on
every domain where the positive control passes on every domain (:func:`dose_choice`); the
profile's ``forget_repeats`` is that dose, and the chapter says whether they agree. (The
positive control's requirement was added after the cpu build of 0523b4a, where it passed at
the chosen dose, and the control became the sibling after the cpu build of 3e4da98, where
the second replicate's retrained model, from another base, was the control; see
:data:`~llmunlearn.studies.decisions.CHANGED_AFTER_RESULTS`.)
"""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd

from ..config import DOMAINS, Profile, check_doses
from ..data.corpus import chunk_documents, forget_documents, pretraining_documents
from ..evaluation import evaluate_membership
from ..measurement.mia import cluster_auc_interval
from ..runs import Run
from ..training.pretraining import (
    forget_ids,
    memorisation_gap,
    pretrain,
    pretraining_tokenizer,
    retrained_order,
    siblings,
    slice_order,
    training_order,
)
from .decisions import (
    AUC_MARGIN,
    forget_reached,
    membership_equivalent,
    paired_auc_difference,
    stands_in,
)
from .retraining import ratio_interval


def dose_profile(profile: Profile, dose: int) -> Profile:
    """``profile`` at memorisation dose ``dose`` on the matched design (the pilot's)."""
    return profile.replace(forget_repeats=dose, design="matched")


def dose_models(
    profile: Profile, dose: int, progress: bool = True, controls: bool = True
) -> dict[str, Run]:
    """The original at ``dose``, each domain's exact retrained model (matched design) and,
    with ``controls``, each domain's positive control (the retrained model's sibling:
    :func:`~llmunlearn.training.pretraining.siblings`): ``{"original": run,
    "retrained-<domain>": run, "control-<domain>": run}``. At the profile's own dose these
    are the zoo's models and the claims page's siblings (the same runs); elsewhere the
    original is measured on its gap only."""
    p = dose_profile(profile, dose)
    own = dose == profile.forget_repeats
    out = {"original": pretrain(p, progress=progress, measure="all" if own else "gap")}
    for d in DOMAINS:
        out[f"retrained-{d}"] = pretrain(p, without=d, progress=progress)
    if controls:
        out.update({f"control-{d}": run for d, run in siblings(p, progress).items()})
    return out


def dose_pilot(
    profile: Profile, doses=None, progress: bool = True, stop: bool = True
) -> pd.DataFrame:
    """The pilot over ``doses`` (default the profile's ``pilot_doses``): one row per (dose,
    domain) with ``M``, the original's AUC and its interval over source documents
    (``AUC``, ``AUC low``, ``AUC high``), the retrained model's, the paired difference and
    its interval (``difference``, ``low``, ``high``), ``separable`` (interval above the
    equivalence margin),
    ``negative control fails`` (the original not equivalent to the retrained model),
    the positive control's forget ratio to the referee, its AUC difference with interval and
    ``positive control passes`` (forget reached and membership equivalent), and the final
    slices' wall time. Every dose is checked before anything trains. The doses are
    tried in increasing order and, with ``stop``, the pilot ends at the first one usable
    on every domain (a larger dose cannot change :func:`dose_choice`; each costs a slice of
    twice the length of the one before, for the original and each retrained model).
    Without ``stop``, the doses above the first usable one are measured without their
    positive controls (the rule cannot use them; their control columns are empty and
    ``positive control passes`` is None), which saves a slice and an evaluation per domain."""
    doses = check_doses(profile.pilot_doses if doses is None else doses, "pilot doses")
    p, rows = dose_profile(profile, profile.forget_repeats), []  # the chunks: every dose's
    chosen = False  # a smaller dose was usable on every domain: no controls needed above it
    for k in doses:
        models = dose_models(profile, k, progress, controls=not chosen)
        gap = memorisation_gap(models["original"])
        for d in DOMAINS:
            rows.append({"dose": k, "domain": d, "M": gap[d], **_dose_row(profile, p, d, models)})
        chosen = chosen or all(usable(r) for r in rows if r["dose"] == k)
        if stop and chosen:
            break
    return pd.DataFrame(rows).set_index(["dose", "domain"])


def _dose_row(profile: Profile, p: Profile, d: str, models: dict) -> dict:
    """One domain at one dose (see :func:`dose_pilot`): the original's and the retrained
    model's membership AUCs with intervals, their paired difference, R with its interval,
    claim 4's test, the positive control and the members' counts."""
    o = evaluate_membership(p, d, models["original"])
    r = evaluate_membership(p, d, models[f"retrained-{d}"])
    docs = o["score_docs"]

    def auc_interval(row):  # every forget chunk against every approximate chunk
        s = row["scores"]
        return cluster_auc_interval(
            s["forget"], docs["forget"], s["approximate"], docs["approximate"], seed=profile.seed
        )

    lo, hi = auc_interval(o)
    diff, dlo, dhi = paired_auc_difference(
        o["scores"], r["scores"], docs["forget"], docs["approximate"], seed=profile.seed
    )
    r_lo, r_hi = ratio_interval(
        r["chunk_nll"]["forget"],
        docs["forget"],
        o["chunk_nll"]["approximate"],
        docs["approximate"],
        profile.seed,
    )
    ref_lo, ref_hi = auc_interval(r)
    return {
        "AUC": o["auc_all"],
        "AUC low": lo,
        "AUC high": hi,
        "retrained AUC": r["auc_all"],
        "difference": diff,
        "low": dlo,
        "high": dhi,
        "separable": bool(dlo > AUC_MARGIN),
        "negative control fails": not membership_equivalent(dlo, dhi),
        "R": r["ppl_forget"] / o["ppl_approximate"],
        "R low": r_lo,
        "R high": r_hi,
        "claim 4": stands_in(r_lo, r_hi, ref_lo, ref_hi),
        **positive_control(p, d, models.get(f"control-{d}"), o, r, docs),
        "members": len(docs["forget"]),
        "member sources": len(set(docs["forget"])),
        "slice wall_s": models["original"].summary["branch_wall_s"],
    }


def positive_control(profile: Profile, domain: str, run: Run | None, o: dict, r: dict, docs):
    """The pilot's columns of the positive control ``run`` (None: not measured) against the
    referee's evaluation ``r``, with the original's ``o`` giving the forget gap."""
    if run is None:
        nan = float("nan")
        return {
            "control forget / referee": nan,
            "control difference": nan,
            "control low": nan,
            "control high": nan,
            "positive control passes": None,
        }
    c = evaluate_membership(profile, domain, run)
    diff, lo, hi = paired_auc_difference(
        c["scores"], r["scores"], docs["forget"], docs["approximate"], seed=profile.seed
    )
    reached = bool(forget_reached(c["ppl_forget"], r["ppl_forget"], o["ppl_forget"]))
    return {
        "control forget / referee": c["ppl_forget"] / r["ppl_forget"],
        "control difference": diff,
        "control low": lo,
        "control high": hi,
        "positive control passes": reached and membership_equivalent(lo, hi),
    }


def usable(row) -> bool:
    """A (dose, domain) row of the pilot the grid may run at: the original separable from its
    retrained model and the positive control measured and passing."""
    return bool(row["separable"]) and row["positive control passes"] in (True, np.True_)


def dose_choice(frame: pd.DataFrame) -> int | None:
    """The smallest dose of a :func:`dose_pilot` usable on every domain (separable, and the
    positive control passes); None if none."""
    ok = frame.apply(usable, axis=1).groupby(level="dose").all()
    return int(ok.index[ok].min()) if ok.any() else None


# --- the order contrast (late against mixed; no longer in the cpu book) ---------------
ORDER_CONTRAST = {"late": None, "mixed": 1}
"""The pre-training orders the contrast compares: the late order at the profile's
``forget_repeats``, and the mixed order as it was before the late one (each forget chunk
once per pass); None takes the profile's count."""


def order_contrast(profile: Profile, progress: bool = True):
    """What the late order changes against the mixed one, measured once (one original
    model per order, the profile's seed): a ``DataFrame`` indexed by order with the
    times each forget chunk is seen (``forget seen``), the memorisation gap M per domain
    (``M <domain>``), approximate perplexity per domain (unseen same-domain text),
    general/evaluation perplexity, the original's optimiser steps and the steps one exact
    retrained model trains (``retrained steps``: the final slice under the late order,
    the whole recipe minus the domain's forget chunks under the mixed order; the median
    over domains, computed from the chunk order, not trained)."""

    rows, doc_ids = {}, chunk_doc_ids(profile)  # the chunks do not depend on the order
    for order, repeats in ORDER_CONTRAST.items():
        prof = profile.replace(
            pretrain_order=order, forget_repeats=repeats or profile.forget_repeats
        )
        run = pretrain(prof, progress=progress, measure="all" if prof == profile else "gap")
        ppl = run.summary["ppl"]
        seen = prof.forget_repeats * (1 if order == "late" else prof.pretrain_epochs)
        rows[order] = {
            "forget seen": seen,
            **{f"M {d}": v for d, v in memorisation_gap(run).items()},
            **{f"approximate {d}": ppl[d]["matched/approximate"] for d in DOMAINS},
            "general": ppl["general"]["evaluation"],
            "steps": run.summary["steps"],
            "retrained steps": statistics.median(
                retrained_steps(prof, d, doc_ids) for d in DOMAINS
            ),
            "wall_s": run.summary["wall_s"],
        }
    frame = pd.DataFrame(rows).T
    frame.index.name = "order"
    return frame


def retrained_steps(profile: Profile, domain: str, doc_ids: list[str] | None = None) -> int:
    """Optimiser steps the exact retrained model without ``domain``'s forget set (the
    profile's design) trains under the profile's order, from the chunk order alone
    (``doc_ids``: :func:`chunk_doc_ids`, computed when not given)."""
    doc_ids = chunk_doc_ids(profile) if doc_ids is None else doc_ids
    forget, removed = (
        forget_ids(profile),
        {d.id for d in forget_documents(profile, domain, profile.design)},
    )
    if profile.pretrain_order == "late":
        order = slice_order(doc_ids, forget, profile.pretraining, profile.seed)
    else:
        order, _ = training_order(doc_ids, forget, profile.pretraining, profile.seed)
    kept = retrained_order(order, doc_ids, removed, forget, profile.pretraining, profile.seed)
    return max(1, len(kept) // profile.pretrain_batch)


def chunk_doc_ids(profile: Profile) -> list[str]:
    """The document of each pre-training chunk, in chunk order."""
    tokenizer = pretraining_tokenizer(profile)
    return list(
        chunk_documents(tokenizer, pretraining_documents(profile), profile.chunk_len)["doc_id"]
    )
