"""The paper's claims (and the survey's, where we test them), each decided per domain from
the cached runs of the chapters by a rule written next to it; nothing is typed in.

Per domain a claim *supports*, *contradicts* or is *undetermined*: undetermined when no
compared method reaches the reference (nothing to compare) or when the difference lies
within the replicates' spread (two independently pre-trained originals, ``grid_seeds``).
A claim's verdict is taken over its determined domains: ``supports`` or ``contradicts``
when they agree, ``mixed`` when they do not, ``not testable here`` when none is
determined. No tie is a refutation.

The exact retrained model is the referee (:mod:`llmunlearn.studies.robustness`): the robustness
claims are judged at its forget perplexity and membership, the paper's approximate target is shown
beside it as the paper's view."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import Profile

VERDICTS = ("supports", "contradicts", "mixed", "not testable here")
"""A claim's verdict over its domains."""

from .retraining import EQUIVALENCE_BAND  # noqa: E402  (claim 4's band, defined once)

PAPER_SCALE = {"pretrain_tokens": 3.1e12, "forget_tokens": 8e6, "params": 6e9}
"""Yi-6B's pre-training tokens and about one epoch over the paper's forget set (claim 2's
extrapolation; the efficiency chapter states the same figures)."""


def compare(a, b, noise: float | None = None) -> str:
    """Does ``a`` exceed ``b``? ``a`` and ``b`` hold one value per replicate (same order).
    ``supports`` when every replicate's difference is positive and the mean difference
    exceeds the spread of the differences over replicates, ``contradicts`` when the same
    holds for a negative difference, else ``undetermined``. With one replicate the spread
    is unknown: ``noise`` (a spread measured elsewhere) stands in for it, else the answer
    is undetermined."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if not len(d) or np.isnan(d).any() or (len(d) < 2 and noise is None):
        return "undetermined"
    if len(d) < 2:
        return "supports" if d[0] > noise else "contradicts" if -d[0] > noise else "undetermined"
    spread = float(d.max() - d.min())
    if (d > 0).all() and d.mean() > spread:
        return "supports"
    if (d < 0).all() and -d.mean() > spread:
        return "contradicts"
    return "undetermined"


def overall(per_domain: dict[str, str]) -> str:
    """A claim's verdict from its per-domain decisions (see the module doc)."""
    determined = [v for v in per_domain.values() if v != "undetermined"]
    if not determined:
        return "not testable here"
    if all(v == "supports" for v in determined):
        return "supports"
    if all(v == "contradicts" for v in determined):
        return "contradicts"
    return "mixed"


def _fmt(per: dict[str, str]) -> str:
    return ", ".join(f"{d}: {v}" for d, v in per.items())


def claims_table(profile: Profile, grid: pd.DataFrame, zoo: dict | None = None) -> pd.DataFrame:
    """One row per claim: claim, criterion, our number, per-domain decisions, verdict, chapter.
    ``grid`` is the :func:`~llmunlearn.studies.robustness.grid_frame` of every domain; the other
    chapters' results are read from their caches (the ground truth, the cost table, the
    relearning runs, the real LLM)."""
    from .robustness import guidelines, per_replicate, robustness
    from .retraining import ground_truth_table
    from .quantisation import quantisation_attack
    from ..unlearning.methods import METHODS
    from ..training.pretraining import pretrain_zoo
    from .efficiency import cost_frame, cost_ratios
    from ..unlearning.runner import unlearn_all

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    domains = list(dict.fromkeys(grid["domain"]))
    paper = [m for m, s in METHODS.items() if s.paper]
    reps = sorted(grid["replicate"].unique())
    scores = robustness(grid)
    rep = per_replicate(grid)  # (domain, method, optimizer) x replicate
    rows = []

    def add(claim, criterion, number, per, verdict, chapter):
        rows.append(
            {
                "claim": claim,
                "criterion": criterion,
                "our number": number,
                "per domain": _fmt(per) if isinstance(per, dict) else per,
                "verdict": verdict,
                "chapter": chapter,
            }
        )

    def score(domain, method, optimizer="adamw"):
        """Per replicate (every replicate, NaN where the method did not run)."""
        try:
            row = rep.loc[(domain, method, optimizer)]
        except KeyError:
            return np.full(len(reps), np.nan)
        return np.array([row.get(r, np.nan) for r in reps], float)

    # the referee: the retrained model's own row must be good (the design is feasible)
    retrained_good = grid[grid["method"] == "retrained"].groupby("domain")["good"].all().to_dict()

    # 1. seven methods remove pre-training data (the referee's view, then the paper's)
    for view, column in (("referee", "good"), ("paper", "good_paper")):
        _claim_1(grid, domains, reps, paper, retrained_good, column, view, add)

    # 2. more than 1e5 times cheaper than retraining: the law at the paper's scale
    runs = {d: unlearn_all(profile, d, original=zoo["original"], progress=False) for d in domains}
    costs = cost_frame(zoo, runs)
    ratios = cost_ratios(costs)
    per, nums = {}, []
    for d in domains:
        predicted = []
        for m in paper:
            run = runs[d][m]
            streams = 2 if METHODS[m].retain else 1
            forget_tokens = run.summary["tokens"] / streams
            n = zoo["original"].summary["n_params"]
            k = run.summary["flops"] / (6 * n * forget_tokens)  # FLOPs per 6 N forget token
            predicted.append(PAPER_SCALE["pretrain_tokens"] / (k * PAPER_SCALE["forget_tokens"]))
        lo = min(predicted)
        per[d] = (
            "supports" if lo >= 1e5 else "contradicts" if max(predicted) < 1e5 else "undetermined"
        )
        nums.append(
            f"{d}: measured {ratios.loc[d]['FLOPs ratio'].median():,.0f}x in our zoo, "
            f"predicted at Yi-6B's scale {lo:,.0f}x-{max(predicted):,.0f}x"
        )
    add(
        "2. Unlearning costs over 10^5 times less than retraining",
        "the cost ratio's law: retraining FLOPs / unlearning FLOPs = pre-training tokens / "
        "(k x forget tokens), with k each method's FLOPs per 6 N forget token measured in "
        f"our runs; the ratio predicted at the paper's scale ({PAPER_SCALE['pretrain_tokens']:.1e}"
        f" pre-training tokens, {PAPER_SCALE['forget_tokens']:.0e} forget tokens); "
        "supports when every paper method's predicted ratio is >= 1e5 (a statement about "
        "the law at the paper's scale, not about our small zoo)",
        "; ".join(nums),
        per,
        overall(per),
        "efficiency",
    )

    # 3. GA + GD in-distribution most robust
    per, nums = {}, []
    for d in domains:
        mine = score(d, "ga_gd_in")
        others = np.array([score(d, m) for m in paper if m != "ga_gd_in"])
        best_other = np.nanmax(others, axis=0) if len(others) else np.full(len(reps), np.nan)
        if np.nanmax(np.r_[mine, best_other]) <= 0:
            per[d] = "undetermined"  # no method reaches the reference within the tolerances
        else:
            per[d] = compare(mine, best_other)
        nums.append(
            f"{d}: {' / '.join(f'{v:.2f}' for v in mine)} against the best other "
            f"{' / '.join(f'{v:.2f}' for v in best_other)}"
        )
    add(
        "3. GA + GD on in-distribution data is the most robust to hyper-parameters",
        "robustness score (area under the share of learning rates whose utility cost at "
        "the retrained model's forget perplexity stays under each tolerance from 0 to 50 %)"
        " of ga_gd_in against the best other paper method, per replicate: supports when it"
        " is higher on every replicate by more than the replicates' spread, contradicts when"
        " another is higher by as much; undetermined when no method scores above 0",
        "; ".join(nums) + " (per replicate)",
        per,
        overall(per),
        "robustness",
    )

    # 4. approximate retraining stands in for retraining
    gt = ground_truth_table(profile)
    matched = gt.xs("matched", level="design") if "design" in gt.index.names else gt
    lo_b, hi_b = 1 / EQUIVALENCE_BAND, EQUIVALENCE_BAND
    per, nums = {}, []
    for d, r in matched.iterrows():
        a_in = r["retrained AUC min_k@0.3 low"] <= 0.5 <= r["retrained AUC min_k@0.3 high"]
        if lo_b <= r["R low"] and r["R high"] <= hi_b and a_in:
            per[d] = "supports"
        elif r["R low"] > hi_b or r["R high"] < lo_b:
            per[d] = "contradicts"
        else:
            per[d] = "undetermined"
        nums.append(
            f"{d}: R = {r['R']:.2f} ({r['R low']:.2f}-{r['R high']:.2f}), adjusted "
            f"{r['R adjusted']:.2f}, retrained AUC {r['retrained AUC min_k@0.3']:.2f}"
        )
    add(
        "4. The original model's approximate perplexity stands in for a retrained model",
        f"equivalence on the matched design: R's 95 % interval (over documents) inside "
        f"[{lo_b:.2f}, {hi_b:.2f}] and the retrained model's Min-K% AUC interval containing "
        "0.5 supports; the interval wholly outside the band contradicts; else undetermined."
        " R adjusted: divided by the retrained model's change on the other domains' "
        "approximate sets (the control: its recipe takes fewer steps)",
        "; ".join(nums),
        per,
        overall(per),
        "retraining",
    )

    # 5. MIA AUC after unlearning against the retrained model's
    per, nums = {}, []
    at = _selected_cells(grid, profile, paper)
    for d in domains:
        ref = grid[(grid["domain"] == d) & (grid["method"] == "retrained")]
        ref = ref[ref["replicate"] == reps[0]].iloc[0]
        orig = grid[(grid["domain"] == d) & (grid["step"] == 0) & (grid["method"] != "retrained")]
        orig_auc = float(orig[orig["replicate"] == reps[0]]["auc"].iloc[0])
        sel = at[(at["domain"] == d) & (at["replicate"] == reps[0])]
        inside = sel["auc_in"].fillna(False).astype(bool)
        orig_inside = ref["auc_low"] <= orig_auc <= ref["auc_high"]
        if orig_inside or not len(sel):
            per[d] = "undetermined"  # the original is already indistinguishable
        else:
            per[d] = "supports" if inside.mean() >= 0.5 else "contradicts"
        nums.append(
            f"{d}: original {orig_auc:.2f}, retrained {ref['auc']:.2f} "
            f"({ref['auc_low']:.2f}-{ref['auc_high']:.2f}), {int(inside.sum())} of "
            f"{len(sel)} methods inside; median gap {sel['auc_gap'].median():+.2f}"
        )
    add(
        "5. Membership-inference AUC after unlearning is that of a model that never saw the data",
        "Min-K% (k = 0.3) AUC of each paper method where its forget perplexity first reaches"
        " the retrained model's (default learning rate, first replicate) against the "
        "retrained model's 95 % interval (over documents): supports when at least half lie "
        "inside, contradicts when fewer; undetermined when the original's AUC is already "
        "inside (nothing to remove)",
        "; ".join(nums),
        per,
        overall(per),
        "privacy",
    )

    # 6. code is the hardest domain
    if "github" in domains and len(domains) > 1:
        mean = {d: np.nanmean(np.array([score(d, m) for m in paper]), axis=0) for d in domains}
        per = {f"github vs {d}": compare(mean[d], mean["github"]) for d in domains if d != "github"}
        if all(np.nanmax(v) <= 0 for v in mean.values()):
            per = {k: "undetermined" for k in per}
        add(
            "6. Code (GitHub) is the hardest domain to unlearn",
            "mean robustness score of the paper's methods per replicate: github's lower than "
            "each other domain's by more than the replicates' spread supports, higher "
            "contradicts; undetermined when no method scores above 0",
            ", ".join(f"{d} {' / '.join(f'{x:.2f}' for x in v)}" for d, v in mean.items()),
            per,
            overall(per),
            "robustness",
        )

    # 7. tuning guidelines
    g = guidelines(grid)
    per = {}
    for (name, held), r in g.iterrows():
        per.setdefault(name, [])
        if r["determined"]:
            per[name].append(bool(r["holds"]))
    decided = {
        k: "undetermined"
        if not v
        else "supports"
        if all(v)
        else "contradicts"
        if not any(v)
        else "undetermined"
        for k, v in per.items()
    }
    add(
        "7. Hyper-parameter tuning guidelines (ours, derived on two domains)",
        "each guideline checked on the held-out third domain, three ways (first replicate): "
        "supports when every determined check holds, contradicts when none does; a check "
        "with nothing to derive the guideline from, or nothing to check it on, is left out",
        ", ".join(f"{k}: {sum(v)} of {len(v)} determined checks hold" for k, v in per.items()),
        decided,
        overall(decided),
        "robustness",
    )

    # survey: NPO vs GA at equal forget progress (utility cost at the retrained level)
    from .robustness import utility_costs

    costs_run = utility_costs(grid)
    at_lr = costs_run[
        (costs_run["optimizer"] == "adamw") & np.isclose(costs_run["lr"], profile.unlearn_lr)
    ]
    per, nums = {}, []
    for d in domains:

        def cost(m):
            c = at_lr[(at_lr["domain"] == d) & (at_lr["method"] == m)].set_index("replicate")
            return np.array([c["cost"].get(r, np.nan) for r in reps], float)

        npo, ga = cost("npo"), cost("ga")
        if (~np.isfinite(npo)).all() and (~np.isfinite(ga)).all():
            per[d] = "undetermined"
        else:
            both = np.isfinite(npo) | np.isfinite(ga)
            big = 1e6  # a censored run costs more than any finite one
            per[d] = compare(
                np.where(np.isfinite(ga), ga, big)[both], np.where(np.isfinite(npo), npo, big)[both]
            )
        nums.append(
            f"{d}: NPO {' / '.join(f'{v:+.0%}' for v in npo)}, "
            f"GA {' / '.join(f'{v:+.0%}' for v in ga)}"
        )
    add(
        "Survey: NPO degrades the model less than GA",
        "utility cost where forget perplexity first reaches the retrained model's (same "
        "learning rate, the profile's), per replicate: NPO's lower by more than the "
        "replicates' spread supports; undetermined when neither reaches it",
        "; ".join(nums),
        per,
        overall(per),
        "robustness",
    )
    for m, name in (("rmu", "RMU"), ("task_vector", "Task-vector negation")):
        per = {}
        for d in domains:
            gd = grid[(grid["domain"] == d) & (grid["method"] == m)]
            if not retrained_good.get(d, False) or not len(gd):
                per[d] = "undetermined"
            else:
                per[d] = "supports" if gd["good"].any() else "contradicts"
        add(
            f"Survey: {name} removes the data while keeping utility",
            "some grid cell is good by the referee's rule (as claim 1); undetermined where "
            "the retrained model's own row is not good",
            ", ".join(
                f"{d}: best forget / retrained "
                f"{grid[(grid['domain'] == d) & (grid['method'] == m)]['forget_ref'].max():.2f}"
                for d in domains
            ),
            per,
            overall(per),
            "robustness",
        )
    so = scores.reset_index()
    so = so[so["method"].isin(profile.grid_sophia_methods)]
    pairs = so.pivot_table(index=["domain", "method"], columns="optimizer", values="score")
    if "sophia" in pairs:
        per = {}
        for (d, m), r in pairs.iterrows():
            a = score(d, m)  # AdamW on every replicate: its spread is the noise
            noise = float(np.nanmax(a) - np.nanmin(a)) if np.isfinite(a).sum() > 1 else None
            per[f"{d} {m}"] = (
                "undetermined"
                if max(r["sophia"], r["adamw"]) <= 0
                else compare([score(d, m, "sophia")[0]], [a[0]], noise)
            )
        add(
            "Survey: second-order optimisation (Sophia) unlearns more robustly than AdamW",
            "SophiaG's robustness score against AdamW's on the first replicate, per (domain, "
            "method) run with both: a difference larger than AdamW's own spread over the "
            "replicates decides; undetermined when that spread is unknown or neither scores",
            ", ".join(
                f"{d} {m}: {r['sophia']:.2f} vs {r['adamw']:.2f}" for (d, m), r in pairs.iterrows()
            ),
            per,
            overall(per),
            "robustness",
        )
    from .relearning import HIDDEN, MARGIN, hidden_knowledge, relearn_domain, steps_to_recover

    rel = pd.concat([relearn_domain(profile, d, zoo, progress=False) for d in domains])
    pairs = hidden_knowledge(steps_to_recover(rel))
    did = pairs[pairs["unlearned"]]
    per = {}
    for d in domains:
        sub = did[did.index.get_level_values("domain") == d]
        per[d] = (
            "undetermined"
            if not len(sub)
            else "supports"
            if sub["hidden"].mean() > 0.5
            else "contradicts"
            if sub["hidden"].mean() < 0.5
            else "undetermined"
        )
    median = did["own ratio after / retrained's"].median()
    add(
        "Survey: a few relearning steps bring unlearned knowledge back",
        f"among the (method, domain) pairs that had unlearned (held-out forget perplexity "
        f"more than {MARGIN:.0%} above the original's), after the same relearning (a quarter"
        f" of the forget documents) the model's held-out forget over its own approximate "
        f"perplexity ends below {HIDDEN:.2f} x the exact retrained model's same ratio: "
        "supports when most pairs do, contradicts when most do not",
        f"{int(did['hidden'].sum())} of {len(did)} pairs that unlearned ({len(pairs)} in "
        f"all); median ratio to the retrained model {median:.2f}",
        per,
        overall(per),
        "relearning",
    )
    from .real_llm import real_llm_study

    real = real_llm_study(profile, progress=False)
    _real_llm_rows(real, add)
    _blind_baseline_row(profile, real["membership"], add)
    quant = {
        d: quantisation_attack(profile, d, zoo, methods=paper, progress=False) for d in domains
    }
    quant["SmolLM2"] = real["quantisation"]
    _quantisation_row(quant, add)
    return pd.DataFrame(rows)


def _real_llm_rows(real: dict, add) -> None:
    """The real LLM against its exact twin, by the grid's rule
    (:func:`~llmunlearn.studies.robustness.good` with the twin as the referee): per method,
    supports when its selected model's forget perplexity lies within
    :data:`~llmunlearn.studies.robustness.FORGET_BAND` of the twin's, its AUC within the twin's
    interval and retain and general perplexity within
    :data:`~llmunlearn.studies.robustness.TOLERANCE` of the original's; contradicts when it
    finished and misses; undetermined when the design cannot resolve membership (the original's
    AUC inside the twin's interval) or the twin itself fails its own rule (R outside the band).
    The paper's view (the approximate target) is given beside it."""
    from .robustness import FORGET_BAND, TOLERANCE

    table, twin = real["table"], real["twin"]
    lo, hi = twin["auc_twin_low"], twin["auc_twin_high"]
    resolved = not lo <= twin["auc_original"] <= hi
    referee_ok = 1 / FORGET_BAND <= twin["R"] <= FORGET_BAND
    base = table.loc["original", ["retain", "general"]]
    per, paper_view = {}, {}
    for m in real["runs"]:
        row = table.loc[m]
        kept = (row[["retain", "general"]] / base - 1).max() <= TOLERANCE
        near = 1 / FORGET_BAND <= row["forget / twin"] <= FORGET_BAND and lo <= row["AUC"] <= hi
        per[m] = (
            "undetermined"
            if not (resolved and referee_ok)
            else "supports"
            if near and kept
            else "contradicts"
        )
        paper_view[m] = (
            "supports"
            if 1 / FORGET_BAND <= row["forget / target"] <= FORGET_BAND and kept
            else "contradicts"
        )
    add(
        "The paper's setting on a real pre-trained LLM (SmolLM2-135M, continued on members "
        "it never saw, against its exact retrained twin): the methods remove them",
        f"per method, the selected model's forget perplexity within a factor {FORGET_BAND:g} "
        f"of the twin's, its Min-K% AUC inside the twin's interval, retain and general "
        f"perplexity within +{TOLERANCE:.0%} of the original's; undetermined when the "
        "original's AUC lies inside the twin's interval (no membership to remove) or the "
        f"twin's own R lies outside the band. Paper's view (approximate target): "
        f"{_fmt(paper_view)}",
        f"M {twin['M']:.2f}, twin R {twin['R']:.2f}, AUC original {twin['auc_original']:.2f}"
        f" vs twin {twin['auc_twin']:.2f} ({lo:.2f}-{hi:.2f}); "
        + ", ".join(
            f"{m}: forget / twin {table.loc[m, 'forget / twin']:.2f}, AUC {table.loc[m, 'AUC']:.2f}"
            for m in real["runs"]
        ),
        per,
        overall(per),
        "real-llm",
    )


def _blind_baseline_row(profile: Profile, real_membership: pd.DataFrame, add) -> None:
    """Whether the membership attack measures membership: per (domain, design) of the zoo
    and per design of the real LLM, supports when the Min-K% AUC's interval lies above the
    blind baseline's (the text alone), contradicts when the blind baseline's lies above
    the attack's, undetermined when they overlap."""
    from .retraining import blind_baseline_table

    zoo = blind_baseline_table(profile)
    cases = {
        f"{d}/{g}": (
            r["Min-K% low"],
            r["Min-K% high"],
            r["blind low"],
            r["blind high"],
            r["Min-K% AUC (original)"],
            r["blind AUC"],
        )
        for (d, g), r in zoo.iterrows()
    }
    for (g, m), r in real_membership.iterrows():
        if m != "twin":
            cases[f"SmolLM2/{g}"] = (
                r["low"],
                r["high"],
                r["blind low"],
                r["blind high"],
                r["Min-K% AUC"],
                r["blind AUC"],
            )
    per = {
        k: "supports" if a_lo > b_hi else "contradicts" if b_lo > a_hi else "undetermined"
        for k, (a_lo, a_hi, b_lo, b_hi, _, _) in cases.items()
    }
    add(
        "The Min-K% AUC measures membership (not a difference between the sets)",
        "per domain and design, the original model's Min-K% AUC (forget against approximate)"
        " against a blind baseline that never sees the model (TF-IDF n-grams and logistic "
        "regression, cross-validated by document): supports when the attack's 95 % interval"
        " lies above the blind one's, contradicts when the blind one's lies above the "
        "attack's",
        "; ".join(f"{k}: attack {v[4]:.2f}, blind {v[5]:.2f}" for k, v in cases.items()),
        per,
        overall(per),
        "privacy",
    )


MATERIAL = 0.1
"""The share of unlearning's effect that quantisation must take back to count as bringing
knowledge back (a tenth); an effect bounded below it is equivalent to none."""


def quantisation_decisions(frames: dict[str, pd.DataFrame], bits: int = 4) -> pd.DataFrame:
    """Per domain (name -> :func:`~llmunlearn.studies.quantisation.quantisation_attack` frame):
    the median share of the methods' fp32 change of log forget perplexity that ``bits``
    takes back (``undone``), the exact retrained model's (how far quantisation moves a
    model that never saw the data back toward the original), and the noise: how far
    quantisation moves the original's own forget perplexity, over the median distance of
    the methods from it. With d = methods' median - retrained's: ``decision`` supports
    when d exceeds both the noise and :data:`MATERIAL`, contradicts when |d| plus the
    noise stays below :data:`MATERIAL` (equivalent to no effect), else undetermined."""
    rows = []
    for d, f in frames.items():
        q = f[f["bits"] == bits].set_index("model")
        fp = f[f["bits"] == 32].set_index("model")["ppl_forget"]
        methods = [m for m in q.index if m not in ("original", "retrained")]
        moved = np.abs(np.log(fp[methods] / fp["original"]))
        noise = abs(np.log(q.loc["original", "ppl_forget"] / fp["original"])) / max(
            float(moved.median()), 1e-12
        )
        undone = float(q.loc[methods, "undone"].median())
        ret = float(q.loc["retrained", "undone"]) if "retrained" in q.index else np.nan
        diff = undone - ret
        rows.append(
            {
                "domain": d,
                "methods undone (median)": undone,
                "methods undone (max)": float(q.loc[methods, "undone"].max()),
                "retrained undone": ret,
                "noise": noise,
                "decision": "undetermined"
                if np.isnan(diff)
                else "supports"
                if diff > max(noise, MATERIAL)
                else "contradicts"
                if abs(diff) + noise < MATERIAL
                else "undetermined",
            }
        )
    return pd.DataFrame(rows).set_index("domain")


def _quantisation_row(frames: dict[str, pd.DataFrame], add) -> None:
    """The survey's robustness claim (Zhang et al. 2024): quantising an unlearned model
    brings back what unlearning removed (:func:`quantisation_decisions` at 4 bits)."""
    table = quantisation_decisions(frames)
    per = table["decision"].to_dict()
    add(
        "Quantisation to 4 bits brings back what unlearning removed (survey)",
        "per domain, the median share of the methods' change of log forget perplexity "
        "that 4-bit round-to-nearest (Q4_1, every 2-D weight) takes back, against the "
        f"exact retrained model's: supports when the difference exceeds {MATERIAL:.0%} and "
        "what quantisation moves the original itself (relative to the methods' distance), "
        f"contradicts when it is bounded below {MATERIAL:.0%} (the difference plus that noise)",
        "; ".join(
            f"{d}: methods {r['methods undone (median)']:+.3f} (max "
            f"{r['methods undone (max)']:+.3f}), retrained {r['retrained undone']:+.3f}, "
            f"noise {r['noise']:.3f}"
            for d, r in table.iterrows()
        ),
        per,
        overall(per),
        "relearning",
    )


def _claim_1(grid, domains, reps, paper, retrained_good, column, view, add):
    """Claim 1 by the good-cell rule of ``column`` (``good``: the referee's; ``good_paper``:
    the paper's approximate target), one row."""
    from .robustness import FORGET_BAND, TOLERANCE

    per, nums = {}, []
    first = grid[(grid["optimizer"] == "adamw") & grid["method"].isin(paper)]
    anygood = first.groupby(["domain", "replicate", "method"])[column].any()
    for d in domains:
        counts = [int(anygood.loc[d, r].sum()) if (d, r) in anygood.index else 0 for r in reps]
        ran = [
            int(first[(first["domain"] == d) & (first["replicate"] == r)]["method"].nunique())
            for r in reps
        ]
        shares = [c / n for c, n in zip(counts, ran) if n]
        if not retrained_good.get(d, False):
            per[d] = "undetermined"
        elif all(s >= 0.5 for s in shares):
            per[d] = "supports"
        elif all(s < 0.5 for s in shares):
            per[d] = "contradicts"
        else:
            per[d] = "undetermined"
        nums.append(f"{d}: " + " / ".join(f"{c} of {n}" for c, n in zip(counts, ran)))
    if view == "paper":
        claim = "1. (the paper's view) The seven methods remove pre-training data"
        rule = (
            f"as the row above, with the paper's rule for a good cell: forget perplexity "
            f"within x{FORGET_BAND:g} of the approximate target (no retrained model, no "
            "membership condition); where the two rows differ, the stand-in changes the "
            "verdict"
        )
    else:
        claim = "1. The seven methods remove pre-training data (arXiv, GitHub, books)"
        rule = (
            f"per domain and replicate, the paper's methods with a good cell (forget "
            f"perplexity within x{FORGET_BAND:g} of the exact retrained model's, its AUC "
            f"within the retrained model's interval, held-out retain and general within "
            f"+{TOLERANCE:.0%}); supports when at least half have one on every replicate, "
            "contradicts when fewer than half on every replicate; undetermined when the "
            "retrained model's own row is not good or the replicates disagree"
        )
    add(claim, rule, "; ".join(nums) + " (per replicate)", per, overall(per), "robustness")


def _selected_cells(grid: pd.DataFrame, profile: Profile, methods) -> pd.DataFrame:
    """Per domain, replicate and method (AdamW, the profile's learning rate): the first
    evaluated step whose forget perplexity reaches the retrained model's (else the last
    step)."""
    f = grid[
        (grid["optimizer"] == "adamw")
        & grid["method"].isin(methods)
        & np.isclose(grid["lr"], profile.unlearn_lr)
        & (grid["step"] > 0)
        & (grid["status"] == "finished")
    ]
    rows = []
    for _, g in f.groupby(["domain", "replicate", "method"], sort=False):
        g = g.sort_values("step")
        hit = g[g["forget_ref"] >= 1] if "forget_ref" in g else g.iloc[0:0]
        rows.append(hit.iloc[0] if len(hit) else g.iloc[-1])
    return pd.DataFrame(rows)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims have each verdict of :data:`VERDICTS`."""
    counts = claims["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}
