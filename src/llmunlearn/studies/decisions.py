"""How a measurement becomes a verdict: every threshold, band, minimum effect and dose of
the claims page, written once, and the rules that use them (issue 35).

Everything here was fixed before the grid's results of this design existed; a value changed
after results exist is listed in :data:`CHANGED_AFTER_RESULTS` and stated on the claims page.
The status page lists each constant with the commit that last changed it.

The rules, in the order a verdict meets them:

- **Forget reached** (:func:`forget_reached`): a model's forget perplexity lies within
  :data:`FORGET_GAP_FRACTION` of the log gap between the original and the exact retrained
  model, either way. The tolerance follows the measured gap, so it can never span it.
- **Membership equivalent** (:func:`membership_equivalent`): the difference between a
  model's Min-K% AUC and the retrained model's, on the same chunks, has a paired 95 %
  interval over *source documents* inside +-:data:`AUC_MARGIN` (two one-sided tests,
  Schuirmann 1987: equivalence is shown, not inferred from a wide interval).
- **Comparisons** (:func:`decide`): a difference between two things measured on the same
  replicates decides only when it is at least the comparison's :data:`MIN_EFFECT` and
  larger than its noise, which is never zero: the noise of one replicate's value is
  estimated from A/A pairs (the same method on independently pre-trained originals),
  pooled over every pair (:func:`replicate_noise`).
- **Controls** (:mod:`llmunlearn.studies.robustness`'s ``controls``): a rule the untouched
  original passes has no power on that domain; verdicts that use it there are "undetermined
  (no power)". The referee's sibling (the positive control: an exact retrained model from
  the same base, its final slice drawn with another seed) must pass.
- **Domains** (:func:`overall`): a claim's verdict needs at least :data:`MIN_DOMAINS`
  determined domains and none opposed.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..config import DEFAULT_DOSES, DOMAINS, check_doses, check_positive  # noqa: F401
from ..measurement.mia import document_weights

FORGET_GAP_FRACTION = 0.5
"""Forget reached: |log(forget ppl / retrained's)| at most this fraction of |log(original's
forget ppl / retrained's)|, the gap the methods are asked to close. A half is the midpoint:
the model is nearer the exact retrained model than the original (in log perplexity), a
nearest-neighbour reading of "behaves like the retrained model". Changed from a quarter
(evidence.md's example) after the positive control failed it; see
:data:`CHANGED_AFTER_RESULTS`."""

AUC_MARGIN = 0.10
"""Membership equivalence margin: the paired 95 % interval of (model's AUC - retrained
model's AUC) over source documents must lie inside +-this. A tenth of the AUC scale: half the
distance from chance (0.5) to the 0.6 that Min-K% reaches on a member set it barely knows."""

TOLERANCE = 0.10
"""How much held-out retain and general perplexity may rise over the original model's in a
good cell."""

FORGET_BAND = 1.2
"""A factor either way: the equivalence band of R (retrained forget / original approximate
perplexity, claim 4) and of the paper's own view (forget perplexity against the approximate
target), where no retrained model tells the gap."""

CONFIDENCE = 0.95
"""Every interval and test: two-sided 95 %."""

MIN_EFFECT = {
    "good-cell share": 0.10,
    "utility cost": 0.05,
    "robustness score": 0.10,
}
"""The smallest difference a comparison may decide on, per measure, fixed before the grid
runs: a tenth of the share of good (learning rate, step) cells (one cell in ten), five
percentage points of utility cost (half the utility tolerance), a tenth of the robustness
score's range. A difference below it is undetermined, however consistent its sign."""

MAX_FALSE_DECISION = 0.05
"""A comparison rule whose measured A/A false-decision rate exceeds this does not decide."""

MIN_DOMAINS = 2
"""A claim's verdict needs at least this many determined domains (and none opposed)."""

MIN_REPLICATES = 2
"""Fewer replicates than this leave no A/A pair to measure a comparison's noise."""

DOSES = DEFAULT_DOSES
"""Memorisation doses of the pilot: times each forget chunk is seen in the final slice (1, 2,
4, 8; the profile's ``pilot_doses``, where smoke tries 1 and 2 only)."""

CHANGED_AFTER_RESULTS: tuple[tuple[str, str], ...] = (
    (
        "forget-reached fraction",
        "moved from a quarter to a half of the log gap (the midpoint) after the cpu grid at "
        "dose 2 (6999fcc) had run: the positive control, an exact retrained model pre-trained "
        "from another seed, sat 6.6 % below the referee on books' forget perplexity (0.934 "
        "against a quarter-gap tolerance of x0.947) and 5.7 % above on arXiv (1.057 against "
        "1.060); seed noise is that large, so a quarter would fail models that never saw the "
        "data. Chosen from the controls, before any claim's verdict was read at the new value",
    ),
    (
        "membership sets",
        "the grid's membership rule read Min-K% scores on every forget chunk against a fixed "
        "sample of 16 approximate chunks; the positive control failed it on arXiv and books "
        "(intervals -0.15 to +0.05 and -0.05 to +0.11) for the width of that sample. Every "
        "approximate chunk is now scored at every evaluated step (issue 35 asks for all "
        "chunks); on the cached models of 6999fcc the positive control's intervals became "
        "-0.06 to +0.04, -0.04 to +0.03 and -0.03 to +0.06",
    ),
    (
        "relearning threshold",
        "moved from 0.95 to 1/1.2 (FORGET_BAND) in a commit that also changed its results "
        "(before issue 35)",
    ),
    (
        "dose pilot's rule",
        "written first (uncommitted) as 'the paired AUC difference between the original and "
        "its retrained model lies above 0'; after the cpu pilot's doses 1 and 2 had been "
        "measured (dose 1 separable at a lower end of +0.057, inside reach of the +-0.10 "
        "margin), changed to 'above the equivalence margin', so that the negative control "
        "fails by the size of the difference; no grid had run at any dose",
    ),
    (
        "dose pilot's positive control",
        "the pilot's rule now also needs the positive control (an exact retrained model of "
        "another seed) to pass the forget and membership rules on every domain at the dose it "
        "picks; added after the cpu build of 0523b4a, in which the positive control passed "
        "every rule at the dose picked (dose 2); it changes no choice there",
    ),
    (
        "positive control",
        "the rules' positive control became the referee's sibling (the same base, its final "
        "slice drawn with another seed) after the cpu build of 3e4da98, where it was every "
        "other replicate's exact retrained model: there the third replicate's (seed 44, "
        "whose base is 20-30 % worse on every set, general text included) failed forget "
        "reached on arXiv and GitHub (1.187 and 1.251 against x1.124 and x1.145) and 6 of "
        "12 checks, while seed 43's passed all 12. The unlearned models start from the "
        "first replicate's base, so the randomness their target carries is the final "
        "slice's; the other bases are still judged and shown, and decide only where a "
        "profile has no sibling. The dose pilot's control became the sibling too",
    ),
    (
        "pilot band",
        "the pilot's band (1.15-1.5) picks no repeat count in the cpu build of b4af166 "
        "(GitHub's M 1.146); the profile kept 2 repeats",
    ),
)
"""Thresholds changed after results of their design existed: stated on the claims page."""

THRESHOLDS = (
    "FORGET_GAP_FRACTION",
    "AUC_MARGIN",
    "TOLERANCE",
    "FORGET_BAND",
    "CONFIDENCE",
    "MIN_EFFECT",
    "MAX_FALSE_DECISION",
    "MIN_DOMAINS",
    "MIN_REPLICATES",
    "DOSES",
)
"""The names of this module's decision constants (the status page lists each)."""

REASONS = (
    "no power",
    "positive control fails",
    "not reached",
    "within noise",
    "noise unknown",
    "A/A rate above 5 %",
)
"""Why a verdict is undetermined."""


# --- checks of every value a user may pass -------------------------------------------


def check_min_effect(name: str, value) -> float:
    """``value`` if it is a positive finite number, else a ``ValueError`` naming it."""
    return float(check_positive(f"minimum effect {name!r}", value))


def check_fraction(name: str, value) -> float:
    """``value`` if it lies in (0, 1), else a ``ValueError`` naming it (a tolerance, a
    share of the gap)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return float(value)


def check_replicates(seeds, needed: int = MIN_REPLICATES) -> tuple:
    """``seeds`` if it names at least ``needed`` replicates, else a ``ValueError``: a
    comparison between methods needs A/A pairs to measure its noise."""
    seeds = tuple(seeds)
    if len(seeds) < needed:
        raise ValueError(
            f"a comparison between methods needs at least {needed} replicate originals "
            f"(grid_seeds), got {seeds!r}"
        )
    return seeds


# --- the forget and membership rules --------------------------------------------------


def forget_reached(ppl, retrained_ppl, original_ppl, fraction: float = FORGET_GAP_FRACTION):
    """Whether forget perplexity ``ppl`` lies within ``fraction`` of the log gap between the
    original's and the retrained model's forget perplexity, either way (elementwise on
    arrays; NaN inputs give False). A gap of zero leaves nothing to reach: False."""
    check_fraction("forget gap fraction", fraction)
    ppl, ret, orig = (np.asarray(x, float) for x in (ppl, retrained_ppl, original_ppl))
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(np.log(orig / ret))
        dist = np.abs(np.log(ppl / ret))
        out = (dist <= fraction * gap) & (gap > 0)
    return out


def forget_tolerance(gap, fraction: float = FORGET_GAP_FRACTION) -> float:
    """:func:`forget_reached`'s band as a factor of at least 1, either way around the
    retrained model's forget perplexity: ``exp(fraction * |log gap|)`` for the ``gap`` of
    original over retrained forget perplexity (for tables and text; the rule itself reads
    the logs)."""
    return float(np.exp(fraction * abs(np.log(float(gap)))))


def paired_auc_difference(
    scores: dict,
    reference: dict,
    member_docs,
    non_member_docs,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """The difference of two models' AUCs on the same chunks, ``scores`` minus ``reference``
    (each ``{"forget": per member chunk, "approximate": per non-member chunk}``), with its
    percentile bootstrap interval resampling *source documents* on each side; the same draw
    is applied to both models (paired), so what the texts share cancels.

    Returns (difference, low, high)."""
    a_m, a_n = (np.asarray(scores[k], float) for k in ("forget", "approximate"))
    b_m, b_n = (np.asarray(reference[k], float) for k in ("forget", "approximate"))
    if a_m.shape != b_m.shape or a_n.shape != b_n.shape:
        raise ValueError(
            "a paired AUC difference needs both models' scores on the same chunks: got "
            f"{a_m.shape}/{a_n.shape} and {b_m.shape}/{b_n.shape}"
        )
    if len(member_docs) != len(a_m) or len(non_member_docs) != len(a_n):
        raise ValueError(
            f"one source document per chunk is needed: got {len(member_docs)} for "
            f"{len(a_m)} members and {len(non_member_docs)} for {len(a_n)} non-members"
        )
    rng = np.random.default_rng(seed)
    wm = document_weights(member_docs, n_resamples, rng)  # resample x chunk
    wn = document_weights(non_member_docs, n_resamples, rng)

    def auc(m, n, w_m=None, w_n=None):
        cmp = (m[:, None] > n[None, :]) + 0.5 * (m[:, None] == n[None, :])
        if w_m is None:
            return float(cmp.mean())
        return np.einsum("ri,ij,rj->r", w_m, cmp, w_n) / (w_m.sum(1) * w_n.sum(1))

    diff = auc(a_m, a_n) - auc(b_m, b_n)
    draws = auc(a_m, a_n, wm, wn) - auc(b_m, b_n, wm, wn)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(diff), float(lo), float(hi)


def membership_equivalent(low: float, high: float, margin: float = AUC_MARGIN) -> bool:
    """Equivalence by two one-sided tests: the interval of the AUC difference lies inside
    +-``margin``. NaN bounds are not equivalent."""
    check_min_effect("AUC margin", margin)
    return bool(-margin < low and high < margin)


# --- comparisons between methods: noise, decisions, the A/A rate ----------------------


def replicate_noise(pairs) -> tuple[float, int]:
    """The noise of one replicate's value, from A/A pairs: ``pairs`` holds, per unit (a
    method on a domain), its values on two or more replicates. Returns (pooled standard
    deviation, degrees of freedom), pooled over every unit with at least two finite
    values. A tie in one unit contributes zero, but pooled over units the estimate is zero
    only if every unit ties (then no comparison decides: the noise is unknown)."""
    ss, df = 0.0, 0
    for values in pairs:
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        if len(v) >= 2:
            ss += float(((v - v.mean()) ** 2).sum())
            df += len(v) - 1
    return (math.sqrt(ss / df) if df else math.nan), df


@dataclass(frozen=True)
class Decision:
    """One comparison: ``verdict`` (supports / contradicts / undetermined), ``reason``
    (why undetermined, one of :data:`REASONS`; "" when decided), ``difference`` (mean
    over replicates) and ``detectable``: the smallest difference these sizes could decide."""

    verdict: str
    reason: str
    difference: float
    detectable: float

    @property
    def label(self) -> str:
        return f"undetermined ({self.reason})" if self.reason else self.verdict


def threshold(noise: float, df: int, n: int, min_effect: float) -> float:
    """The smallest mean difference over ``n`` replicates that :func:`decide` decides on:
    the larger of ``min_effect`` and the two-sided t quantile (``df`` degrees of freedom of
    the noise) times the standard error of a difference of two means, sqrt(2 / n) x noise."""
    if not (math.isfinite(noise) and noise > 0 and df >= 1 and n >= 1):
        return math.inf
    t = float(stats.t.ppf(1 - (1 - CONFIDENCE) / 2, df))
    return max(min_effect, t * noise * math.sqrt(2 / n))


def decide(a, b, noise: float, df: int, min_effect: float) -> Decision:
    """Does ``a`` exceed ``b``? Both hold one value per replicate (same order; NaN where a
    value is missing: that replicate is left out of both). ``noise`` and ``df`` come from
    :func:`replicate_noise` over A/A pairs of the same measure. Supports when the mean
    difference exceeds :func:`threshold`, contradicts when it is below minus that, else
    undetermined (within noise; noise unknown when it is NaN or zero)."""
    check_min_effect("min_effect", min_effect)
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    diff = float(d.mean()) if n else math.nan
    limit = threshold(noise, df, n, min_effect)
    if not math.isfinite(limit):
        return Decision("undetermined", "noise unknown", diff, limit)
    if diff > limit:
        return Decision("supports", "", diff, limit)
    if diff < -limit:
        return Decision("contradicts", "", diff, limit)
    return Decision("undetermined", "within noise", diff, limit)


def aa_rate(pairs, min_effect: float) -> tuple[float, int]:
    """The measured false-decision rate of :func:`decide` on A/A comparisons: each unit of
    ``pairs`` (a method on a domain, on two or more replicates) compared with itself, every
    pair of its replicates (one replicate each side: three pairs from three replicates),
    with the noise pooled over the other units (leave-one-out, so a unit does not set its
    own threshold). Comparisons of one replicate against one are the hardest case for the
    rule (its threshold assumes the noise it is given); the rule applied to means of ``n``
    replicates scales its threshold by sqrt(2 / n). Returns (share decided, number of A/A
    comparisons)."""
    units = [np.asarray(p, float) for p in pairs]
    units = [u for u in units if np.isfinite(u).sum() >= 2]
    decided, compared = 0, 0
    for i, u in enumerate(units):
        noise, df = replicate_noise([v for j, v in enumerate(units) if j != i])
        values = u[np.isfinite(u)]
        for a in range(len(values)):
            for b in range(a + 1, len(values)):
                verdict = decide([values[a]], [values[b]], noise, df, min_effect).verdict
                decided += verdict != "undetermined"
                compared += 1
    return (decided / compared if compared else math.nan), compared


def simulated_false_decision_rate(
    n_replicates: int,
    noise: float,
    min_effect: float,
    units: int = 24,
    trials: int = 2000,
    seed: int = 0,
) -> float:
    """The share of null comparisons :func:`decide` decides when nothing differs: per trial,
    ``units`` A/A units of ``n_replicates`` normal values of sd ``noise`` set the noise
    (:func:`replicate_noise`), and two more units with the same true mean are compared. The
    property the claims rely on: at most :data:`MAX_FALSE_DECISION` at any noise."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        aa = rng.normal(0, noise, (units, n_replicates))
        s, df = replicate_noise(aa)
        a, b = rng.normal(0, noise, (2, n_replicates))
        hits += decide(a, b, s, df, min_effect).verdict != "undetermined"
    return hits / trials


# --- a claim over domains --------------------------------------------------------------


def stands_in(r_low: float, r_high: float, auc_low: float, auc_high: float) -> str:
    """Claim 4's rule on one domain: the original's approximate perplexity stands in for an
    exact retrained model's forget perplexity when R's interval lies inside
    [1 / :data:`FORGET_BAND`, :data:`FORGET_BAND`] and the retrained model's Min-K% AUC
    interval contains 0.5 (it cannot tell forget from approximate); contradicted when R's
    interval lies wholly outside the band; else "undetermined (within noise)"."""
    lo, hi = 1 / FORGET_BAND, FORGET_BAND
    if lo <= r_low and r_high <= hi and auc_low <= 0.5 <= auc_high:
        return "supports"
    if r_low > hi or r_high < lo:
        return "contradicts"
    return "undetermined (within noise)"


def is_determined(label: str) -> bool:
    return label in ("supports", "contradicts")


def overall(per_domain: dict[str, str], needed: int = MIN_DOMAINS) -> str:
    """A claim's verdict from its per-domain labels: ``supports`` or ``contradicts`` when at
    least ``needed`` domains are determined and all agree, ``mixed`` when determined
    domains disagree, ``undetermined`` when fewer than ``needed`` are determined (one
    domain is a claim about that domain), ``not testable here`` when none is."""
    determined = [v for v in per_domain.values() if is_determined(v)]
    if not determined:
        return "not testable here"
    if len(set(determined)) > 1:
        return "mixed"
    if len(determined) < min(needed, len(per_domain)):
        return "undetermined"
    return determined[0]


def all_of(parts: dict[str, str]) -> str:
    """A conjunction decided per domain: supports only when every part supports,
    contradicts when any part contradicts, else undetermined with the first part's
    reason."""
    if any(v == "contradicts" for v in parts.values()):
        return "contradicts"
    if parts and all(v == "supports" for v in parts.values()):
        return "supports"
    return next((v for v in parts.values() if not is_determined(v)), "undetermined")


def k_of(per_domain: dict[str, str]) -> str:
    """ "k of n domains" (or "k of n cases" where the parts are not the three domains): how
    many of a claim's parts are determined."""
    k = sum(is_determined(v) for v in per_domain.values())
    unit = "domains" if set(per_domain) <= set(DOMAINS) else "cases"
    return f"{k} of {len(per_domain)} {unit}"


def threshold_table():
    """Every decision constant of this module with its value and the commit that last
    changed its line (``git log -G``; "not in git" outside a checkout): the status page's
    table, so that a threshold moved after results is visible."""

    here = Path(__file__)
    rows = []
    for name in THRESHOLDS:
        try:
            out = subprocess.run(
                ["git", "log", "-1", "--format=%h %cs", "-G", rf"^{name}\b", "--", here.name],
                cwd=here.parent,
                capture_output=True,
                text=True,
                timeout=30,
            )
            commit = out.stdout.strip() or ("uncommitted" if out.returncode == 0 else "not in git")
        except (OSError, subprocess.SubprocessError):
            commit = "not in git"
        rows.append({"constant": name, "value": repr(globals()[name]), "last changed": commit})
    return pd.DataFrame(rows).set_index("constant")
