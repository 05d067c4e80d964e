"""The hyper-parameter grid: every method x learning rate x evaluated step x seed.

The paper's Figure 2 claims that gradient ascent with gradient descent on in-distribution
data is the most robust to learning rate and number of steps. A grid cell is one
(method, optimiser, learning rate, seed, step): each learning rate is one unlearning run
(:func:`llmunlearn.unlearning.runner.unlearn`, the chapters' recipe) evaluated every
``eval_every`` steps, so the steps axis comes with the run. The profile declares the grid
(``grid_lrs``, ``grid_seeds``, ``grid_seed_methods``, ``grid_sophia_methods``): ``cpu``
runs a small one, ``gpu`` a larger one, with this code.

Every threshold is written once, in :mod:`llmunlearn.studies.decisions`. The exact retrained
model is the referee; the untouched original (negative control) and the referee's sibling
(positive control: the same base, its final slice drawn with another seed) are judged by
every rule, and the exact retrained models of the other replicates (other bases) beside them
(:func:`controls`).

- runs use a constant learning rate after warm-up and are evaluated at the profile's
  ``grid_eval_steps`` (geometrically spaced), so each run sweeps its total amount of
  unlearning; the grid runs on every independently pre-trained original of
  ``grid_seeds`` (the replicates);
- a cell is **good** when forget is *reached* (its perplexity within
  :data:`~llmunlearn.studies.decisions.FORGET_GAP_FRACTION` of the log gap between the
  original and the exact retrained model, either way), its membership is *equivalent* to
  the retrained model's (the paired interval of the AUC difference over source documents
  inside +-:data:`~llmunlearn.studies.decisions.AUC_MARGIN`) and held-out retain and general
  perplexity are at most :data:`TOLERANCE` above the original model's
  (:func:`rule_columns`). Without a retrained model (the paper's setting) the paper's view
  as the paper states it: forget perplexity within :data:`FORGET_BAND` of the original's
  approximate perplexity. The controls (:func:`controls`) show whether each rule can fail;
- a run's **utility cost at target** is max(held-out retain, general perplexity ratio) - 1
  where its forget perplexity first reaches the reference (the retrained model's forget
  perplexity; in the paper's view the approximate target), interpolated in log space
  between evaluated steps; a run that never reaches it is *censored* (infinite cost);
- a method's **robustness curve** on a domain is, for each tolerance from 0 to
  :data:`MAX_TOLERANCE`, the share of its learning rates whose cost stays under it; its
  **score** is the area under that curve (1: every learning rate reaches the reference
  at no cost; 0: none reaches it within the largest tolerance), per replicate;
- a method's **best learning rate** is the one of least utility cost on the first
  replicate, reported on the others (chosen on one sample, reported on another).
"""

from __future__ import annotations

import math

import pandas as pd

from ..config import DOMAINS, Profile, check_choice, check_grid
from ..evaluation import evaluate_reference, utility_intervals
from ..progress import progress_bar as tqdm
from ..runs import Run
from ..training.executor import run_missing, with_threads
from ..training.pretraining import pretrain, pretrain_zoo, siblings
from ..unlearning.methods import METHODS, get_method
from ..unlearning.runner import eval_points, unlearning_inputs, unlearning_run
from .decisions import (  # the thresholds are written once, there
    FORGET_BAND,
    FORGET_GAP_FRACTION,
    TOLERANCE,
    forget_reached,
    forget_tolerance,
    membership_equivalent,
    paired_auc_difference,
)

__all__ = ["FORGET_BAND", "TOLERANCE", "FORGET_GAP_FRACTION"]

MAX_TOLERANCE = 0.5
"""The robustness curve runs over utility tolerances from 0 to this."""

CURVE = tuple(i / 100 for i in range(0, int(MAX_TOLERANCE * 100) + 1))
"""The tolerances the robustness curve is evaluated at (its area is the score)."""


def check_band(name: str, value: float) -> float:
    """``value`` if it is a finite factor of at least 1, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < math.inf:
        raise ValueError(f"{name} must be a finite factor >= 1, got {value!r}")
    return value


def check_grid_methods(profile: Profile) -> None:
    """The grid's method names are methods (needs the method registry, so it is checked
    where the grid is run, not when a profile is made: the configuration sits below the
    methods)."""

    for m in (*(profile.grid_seed_methods or ()), *profile.grid_sophia_methods):
        get_method(m)


def grid_cells(profile: Profile, methods=None) -> list[dict]:
    """The grid's runs: method, optimizer, lr, seed (the unlearning seed, the profile's)
    and ``replicate`` (the pre-training seed of the original it starts from) of each.
    On the first replicate every method runs at every learning rate (methods outside the
    paper's seven at the profile's learning rate only when ``grid_survey_default_lr``),
    and ``grid_sophia_methods`` also with SophiaG; on the other replicates the methods of
    ``grid_seed_methods`` (None: all) likewise, AdamW only. A grid with no learning rate
    is a ``ValueError``."""

    check_grid(profile)
    check_grid_methods(profile)
    if not profile.grid_lrs:
        raise ValueError(
            f"profile {profile.name!r} has no grid: grid_lrs is empty; give it "
            "at least one learning rate (get_profile(..., grid_lrs=(1e-4, "
            "1e-3)))"
        )
    methods = list(methods or METHODS)
    for m in methods:
        get_method(m)
    first, *others = profile.grid_seeds
    seeded = set(methods if profile.grid_seed_methods is None else profile.grid_seed_methods)

    def lrs(m):
        if profile.grid_survey_default_lr and not get_method(m).paper:
            return (profile.unlearn_lr,)
        return profile.grid_lrs

    cells = []
    for m in methods:
        for lr in lrs(m):
            base = {"method": m, "lr": lr, "seed": profile.seed}
            cells.append({**base, "optimizer": "adamw", "replicate": first})
            if m in profile.grid_sophia_methods:
                cells.append({**base, "optimizer": "sophia", "replicate": first})
            cells += [{**base, "optimizer": "adamw", "replicate": r} for r in others if m in seeded]
    return cells


def is_default(profile: Profile, cell: dict) -> bool:
    """Whether ``cell`` is the chapters' run (the profile's learning rate and seed, AdamW):
    its model is kept for the privacy and utility chapters."""
    return (
        cell["optimizer"] == "adamw"
        and math.isclose(cell["lr"], profile.unlearn_lr)
        and cell["seed"] == profile.seed
        and cell.get("replicate", profile.seed) == profile.seed
    )


def run_grid(
    profile: Profile,
    domain: str,
    original: Run | None = None,
    methods=None,
    progress: bool = True,
    zoos: dict | None = None,
) -> list[tuple[dict, Run]]:
    """Run (or reuse) every cell of the grid on ``domain``: a list of (cell, run). Runs
    are cached one by one, so an interrupted grid resumes where it stopped. Only the
    chapters' own runs keep their weights. ``zoos``: replicate seed -> zoo
    (:func:`~llmunlearn.training.pretraining.replicate_zoos`); ``original`` stands for the first
    replicate's original when given. The runs not cached yet execute first in the profile's
    ``jobs`` worker processes, or as Ray tasks with ``executor`` "ray"
    (:mod:`llmunlearn.training.executor`)."""

    check_choice("domain", domain, DOMAINS)
    cells = grid_cells(profile, methods)  # every value checked before any run starts
    originals = {s: z["original"] for s, z in (zoos or {}).items()}
    if original is not None:
        originals[profile.grid_seeds[0]] = original
    for s in {c["replicate"] for c in cells} - set(originals):
        originals[s] = pretrain(profile, seed=s, progress=False)
    # the unlearning stage's inputs, resolved once per original and handed to every run
    local = profile.executor == "local"
    workers = profile.jobs if local else 1
    inputs = {
        s: with_threads(unlearning_inputs(profile, domain, originals[s]), workers)
        for s in sorted({c["replicate"] for c in cells})
    }

    def task(cell):
        return (
            (inputs[cell["replicate"]], cell["method"]),
            {
                "lr": cell["lr"],
                "seed": cell["seed"],
                "optimizer": cell["optimizer"],
                "keep_model": is_default(profile, cell),
                "progress": False,
            },
        )

    if profile.jobs > 1 or not local:  # the runs not cached yet: in workers or on Ray first
        run_missing(
            unlearning_run,
            [(f"{c['method']} lr={c['lr']:g}", *task(c)) for c in cells],
            profile.jobs,
            profile.threads,
            desc=f"grid on {domain}",
            executor=profile.executor,
            address=profile.ray_address,
            inputs=("data", "tokenizer", "evaluate"),
            gpus=profile.ray_gpus_per_run,
        )
    out = []
    with tqdm(cells, desc=f"grid on {domain}", unit="run", disable=not progress) as bar:
        for cell in bar:
            bar.set_postfix_str(
                f"{cell['method']} {cell['optimizer']} lr={cell['lr']:g} "
                f"original s{cell['replicate']}",
                refresh=False,
            )
            args, kwargs = task(cell)
            out.append((cell, unlearning_run(*args, **kwargs)))
    return out


def grid_frame(
    profile: Profile,
    domains=DOMAINS,
    zoo: dict | None = None,
    progress: bool = True,
    methods=None,
) -> pd.DataFrame:
    """One row per grid cell (domain, method, optimizer, lr, seed, replicate, step) from
    the cached runs (run if missing), plus one row per domain and replicate for the exact
    retrained model (method ``retrained``, step 0: the referee judged by the same rules):
    the perplexities, ``forget_rel`` (forget perplexity over the paper's approximate
    target), ``forget_ref`` (over the exact retrained model's forget perplexity: the
    referee; NaN without one), ``retain_rel`` and ``general_rel`` (held-out retain and
    general over the original model's, with ``*_rel_low`` / ``*_rel_high``: their 95 %
    intervals over documents), ``auc`` (Min-K% 0.3, forget against approximate),
    ``auc_gap`` (minus the retrained model's AUC) and ``auc_in`` (within the retrained
    model's interval), ``status``, ``good`` (the referee's rule) and ``good_paper`` (the
    same rule around the approximate target). A run that diverged has rows for the steps
    it never reached, with status ``diverged``. ``zoo`` stands for the first replicate's;
    ``methods`` (default: every registered one) limits the runs."""

    zoos = {}
    for i, s in enumerate(profile.grid_seeds):
        zoos[s] = zoo if (i == 0 and zoo is not None) else pretrain_zoo(profile, False, seed=s)
    rows = []
    for domain in domains:
        refs = {}
        for s, z in zoos.items():
            original = evaluate_reference(profile, domain, z["original"])
            key = f"retrained-{domain}"
            retrained = evaluate_reference(profile, domain, z[key]) if key in z else None
            refs[s] = (original, retrained)
            if retrained is not None:
                rows.append(
                    _row(
                        {"domain": domain, "method": "retrained", "optimizer": "-", "lr": 0.0},
                        s,
                        0,
                        retrained,
                        original,
                        retrained,
                        profile,
                    )
                )
        for cell, run in run_grid(profile, domain, methods=methods, progress=progress, zoos=zoos):
            original, retrained = refs[cell["replicate"]]
            summ, steps = run.summary, run.config["train"]["steps"]
            evals = {e["step"]: e for e in summ["evals"]}
            for step in (0, *eval_points(profile.unlearning, steps)):
                rows.append(
                    _row(
                        {"domain": domain, **cell},
                        cell["replicate"],
                        step,
                        evals.get(step),
                        original,
                        retrained,
                        profile,
                    )
                )
    return rule_columns(pd.DataFrame(rows))


def _row(cell, replicate, step, e, original, retrained, profile) -> dict:
    target = original.get("whole_approximate_ppl", original["ppl_approximate"])
    row = {
        "seed": profile.seed,
        **cell,
        "replicate": replicate,
        "step": step,
        "target": target,
        "status": "finished" if e is not None else "diverged",
    }
    if e is None:
        return row
    row.update({k: e[k] for k in e if k.startswith(("ppl_", "auc"))})
    if cell["method"] == "retrained":  # the referees' chunk scores: the controls pair them
        row["scores"], row["score_docs"] = e.get("scores"), e.get("score_docs")
    row["forget_rel"] = e["ppl_forget"] / target
    row["retain_rel"] = e["ppl_retain"] / original["ppl_retain"]
    row["general_rel"] = e["ppl_general"] / original["ppl_general"]
    row["self_rel"] = e["ppl_forget"] / e["ppl_approximate"]
    # the utility ratios' 95 % intervals over documents (the same chunks in both models)

    intervals = utility_intervals(e, original, profile.seed)  # retain_low -> retain_rel_low
    row.update({k.replace("_", "_rel_", 1): v for k, v in intervals.items()})
    if retrained is not None:
        row["forget_ref"] = e["ppl_forget"] / retrained["ppl_forget"]
        # the gap the methods are asked to close: the original's forget over the referee's
        row["forget_gap"] = original["ppl_forget"] / retrained["ppl_forget"]
        row["auc_gap"] = e["auc"] - retrained["auc"]
        row["auc_in"] = bool(retrained["auc_low"] <= e["auc"] <= retrained["auc_high"])
        row.update(membership_difference(e, retrained, profile.seed))
    return row


def membership_difference(e: dict, retrained: dict, seed: int = 0) -> dict:
    """``auc_diff`` (the row's Min-K% AUC on every evaluated forget and approximate chunk
    minus the retrained model's on the same chunks) and its paired 95 % interval over source
    documents (``auc_diff_low`` / ``_high``); NaN where a row has no per-chunk scores (runs
    cached before they were kept)."""
    docs = retrained.get("score_docs")
    if "scores" not in e or "scores" not in retrained or docs is None:
        return {"auc_diff": math.nan, "auc_diff_low": math.nan, "auc_diff_high": math.nan}
    diff, lo, hi = paired_auc_difference(
        e["scores"], retrained["scores"], docs["forget"], docs["approximate"], seed=seed
    )
    return {"auc_diff": diff, "auc_diff_low": lo, "auc_diff_high": hi}


def rule_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rules' columns (:mod:`llmunlearn.studies.decisions`): ``forget_ok``
    (forget reached: within a fraction of the original's log gap to the retrained model),
    ``member_ok`` (membership equivalent to the retrained model's), ``kept`` (held-out retain
    and general within the tolerance), ``paper_ok`` (the paper's view: forget perplexity
    within the band around the original's approximate perplexity), ``good`` and
    ``good_paper``."""
    f = frame.copy()
    finished = f["status"] == "finished"
    f["kept"] = (
        finished & (f["retain_rel"] <= 1 + TOLERANCE) & (f["general_rel"] <= 1 + TOLERANCE)
    ).fillna(False)
    f["paper_ok"] = (finished & f["forget_rel"].between(1 / FORGET_BAND, FORGET_BAND)).fillna(False)
    if "forget_ref" in f:
        f["forget_ok"] = finished & pd.Series(
            forget_reached(f["forget_ref"], 1.0, f["forget_gap"]), index=f.index
        )
        f["member_ok"] = finished & pd.Series(
            [
                membership_equivalent(lo, hi)
                for lo, hi in zip(f["auc_diff_low"], f["auc_diff_high"])
            ],
            index=f.index,
        )
    f["good"] = good(f)
    f["good_paper"] = good(f, paper=True)
    return f


def good(frame: pd.DataFrame, paper: bool = False) -> pd.Series:
    """Whether each row is a good cell: forget reached and membership equivalent to the
    exact retrained model's (:func:`rule_columns`) with utility kept, where the row has a
    retrained model; else, and with ``paper=True`` always, the paper's view as the paper
    states it: forget perplexity within :data:`FORGET_BAND` of the original's approximate
    perplexity (the whole approximate set), utility kept."""
    finished = frame["status"] == "finished"
    kept = (frame["retain_rel"] <= 1 + TOLERANCE) & (frame["general_rel"] <= 1 + TOLERANCE)
    paper_rule = frame["forget_rel"].between(1 / FORGET_BAND, FORGET_BAND)
    if paper or "forget_ok" not in frame:
        forget = paper_rule
    else:
        referee = frame["forget_ok"].astype(bool) & frame["member_ok"].astype(bool)
        forget = referee.where(frame["forget_ref"].notna(), paper_rule)
    return (finished & kept & forget).fillna(False).astype(bool)


CONTROL_RULES = ("forget reached", "membership equivalent", "good", "paper's view")
"""The rules the controls judge (utility is not a removal rule: the original keeps it)."""


def sibling_frame(profile: Profile, domains=DOMAINS, progress: bool = True) -> pd.DataFrame:
    """The positive control's rows: per domain, the referee's sibling
    (:func:`~llmunlearn.training.pretraining.siblings`, trained if missing) as a row of the
    first replicate's grid (method ``retrained``, step 0) against that replicate's original
    and referee, with the rules' columns; empty where the profile has no sibling (the mixed
    order, a ``base_model``)."""
    seed = profile.grid_seeds[0]
    sib = siblings(profile, progress, seed=seed)
    if not sib:
        return pd.DataFrame()
    zoo = pretrain_zoo(profile, False, seed=seed)
    rows = []
    for d in domains:
        original = evaluate_reference(profile, d, zoo["original"])
        referee = evaluate_reference(profile, d, zoo[f"retrained-{d}"])
        e = evaluate_reference(profile, d, sib[d])
        cell = {"domain": d, "method": "retrained", "optimizer": "-", "lr": 0.0}
        rows.append(_row(cell, seed, 0, e, original, referee, profile))
    return rule_columns(pd.DataFrame(rows))


def controls(frame: pd.DataFrame, sibling: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every rule applied where its answer is known, per domain (from a
    :func:`grid_frame` with at least two replicates, and the :func:`sibling_frame`):

    - the **negative control**: the untouched original (the first replicate's step 0)
      against the referee (the first replicate's exact retrained model); it should *fail*
      every rule. A rule it passes has no power on that domain.
    - the **positive control**: the referee's sibling (``sibling``: the same base, its final
      slice drawn with another seed), against the referee; it should *pass* every rule. The
      unlearned models start from this base, so the sibling carries exactly the randomness
      their target has: where the forget set was seen.
    - the **other bases**: the exact retrained model of each other replicate (another seed
      for the base as well, the same recipe) against the referee: whether a rule holds
      across pre-training seeds. It decides only where there is no sibling (control
      ``positive``, base ``other``).

    One row per (domain, control, replicate, base, rule): ``passes``, ``expected`` and
    ``as expected``; ``base`` is ``same`` (the referee's) or ``other``."""
    f = rule_columns(frame) if "forget_ok" not in frame else frame
    reps = sorted(f["replicate"].unique())
    has_sibling = sibling is not None and len(sibling) > 0
    rows = []
    for domain, g in f.groupby("domain", sort=False):
        first = g[g["replicate"] == reps[0]]
        neg = first[(first["method"] != "retrained") & (first["step"] == 0)]
        ref = first[first["method"] == "retrained"]
        cases = [("negative", reps[0], "same", neg, False)]
        if has_sibling:
            cases.append(("positive", reps[0], "same", sibling[sibling["domain"] == domain], True))
        other = "other bases" if has_sibling else "positive"
        cases += [
            (other, rep, "other", _judged_by_referee(g, rep, ref, f), True) for rep in reps[1:]
        ]
        for control, rep, base, rows_c, expected in cases:
            if not len(rows_c) or not len(ref):
                continue
            r = rows_c.iloc[0]
            for rule, col in zip(CONTROL_RULES, ("forget_ok", "member_ok", "good", "paper_ok")):
                passes = bool(r[col])
                rows.append(
                    {
                        "domain": domain,
                        "control": control,
                        "replicate": rep,
                        "base": base,
                        "rule": rule,
                        "passes": passes,
                        "expected": expected,
                        "as expected": passes == expected,
                        "forget / referee": r["forget_ref"],
                        "gap tolerance": f"x{forget_tolerance(r['forget_gap']):.3f}",
                        "AUC diff": r["auc_diff"],
                        "AUC diff low": r["auc_diff_low"],
                        "AUC diff high": r["auc_diff_high"],
                    }
                )
    return pd.DataFrame(rows)


def _judged_by_referee(g: pd.DataFrame, replicate, ref: pd.DataFrame, f: pd.DataFrame):
    """A later replicate's exact retrained model as a row judged against the first
    replicate's referee (its ratios recomputed; utility against the first original)."""
    other = g[(g["replicate"] == replicate) & (g["method"] == "retrained")]
    if not len(other) or not len(ref):
        return other
    r, base = other.iloc[0].copy(), ref.iloc[0]
    orig = g[
        (g["replicate"] == base["replicate"]) & (g["step"] == 0) & (g["method"] != "retrained")
    ]
    o = orig.iloc[0]
    r["forget_ref"] = r["ppl_forget"] / base["ppl_forget"]
    r["forget_gap"] = base["forget_gap"]
    r["forget_rel"] = r["ppl_forget"] / o["target"]
    r["retain_rel"] = r["ppl_retain"] / o["ppl_retain"]
    r["general_rel"] = r["ppl_general"] / o["ppl_general"]
    e = {"scores": r["scores"]} if isinstance(r.get("scores"), dict) else {}
    r.update(membership_difference(e, base.to_dict()))
    return rule_columns(pd.DataFrame([r]))


def cost_at_target(steps: pd.DataFrame, column: str = "forget_ref") -> float:
    """The utility cost at target of one run (``steps``: its rows, step 0 included):
    max(retain_rel, general_rel) - 1 where ``column`` (forget perplexity over the
    reference) first reaches 1, interpolated in log space between the evaluated steps
    around that point; ``inf`` when the run never reaches it (censored) or diverged
    before."""
    r = steps.sort_values("step")
    prev = None
    for _, row in r.iterrows():
        if row["status"] != "finished" or not math.isfinite(row.get(column, math.nan)):
            return math.inf
        if row[column] >= 1:
            if prev is None or row["step"] == 0:
                return max(row["retain_rel"], row["general_rel"]) - 1
            lf0, lf1 = math.log(prev[column]), math.log(row[column])
            t = 1.0 if lf1 == lf0 else (0 - lf0) / (lf1 - lf0)
            cost = [
                math.exp(math.log(prev[c]) + t * (math.log(row[c]) - math.log(prev[c])))
                for c in ("retain_rel", "general_rel")
            ]
            return max(cost) - 1
        prev = row
    return math.inf


RUN_KEYS = ["domain", "method", "optimizer", "lr", "seed", "replicate"]


def utility_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (and per retrained model): ``cost`` (the referee's view: at the
    retrained model's forget perplexity) and ``cost_paper`` (at the approximate target),
    ``censored`` / ``censored_paper`` when the run never gets there."""
    rows = []
    ref = "forget_ref" if "forget_ref" in frame else "forget_rel"
    for key, g in frame.groupby(RUN_KEYS, sort=False):
        c, cp = cost_at_target(g, ref), cost_at_target(g, "forget_rel")
        rows.append(
            {
                **dict(zip(RUN_KEYS, key)),
                "cost": c,
                "censored": not math.isfinite(c),
                "cost_paper": cp,
                "censored_paper": not math.isfinite(cp),
            }
        )
    return pd.DataFrame(rows)


def robustness_curves(costs: pd.DataFrame, column: str = "cost") -> pd.DataFrame:
    """Per domain, method, optimizer and replicate: the share of learning rates whose cost
    is at most each tolerance of :data:`CURVE` (columns are the tolerances)."""
    keys = ["domain", "method", "optimizer", "replicate"]
    out = {}
    for key, g in costs.groupby(keys, sort=False):
        c = g[column].clip(lower=0).to_numpy()
        out[key] = {t: float((c <= t).mean()) for t in CURVE}
    frame = pd.DataFrame(out).T
    frame.index.names = keys
    return frame


def robustness(frame: pd.DataFrame, column: str = "cost") -> pd.DataFrame:
    """Per domain, method and optimizer: the robustness score (area under the robustness
    curve, 0 to 1) on each replicate, its mean, min and max over replicates; the best
    utility cost at target (over learning rates; mean over replicates); the share of
    censored runs and of runs that reached the reference (``reached``, apart from their
    cost), the share of good (learning rate, step) cells over the whole trajectory
    (``good cells``, the claims' robustness measure), the share of runs that diverged;
    ``paper method``. ``column`` is ``cost``
    (the referee's view) or ``cost_paper`` (at the approximate target)."""
    costs = utility_costs(frame)
    curves = robustness_curves(costs, column)
    area = curves.mean(axis=1).rename("score").reset_index()
    keys = ["domain", "method", "optimizer"]
    out = area.groupby(keys, sort=False)["score"].agg(
        score="mean", score_min="min", score_max="max", replicates="count"
    )
    best = costs.groupby([*keys, "replicate"], sort=False)[column].min().groupby(keys).mean()
    out["best cost"] = best
    cens = "censored" if column == "cost" else "censored_paper"
    out["censored"] = costs.groupby(keys, sort=False)[cens].mean()
    out["reached"] = 1 - out["censored"]  # apart from what reaching it cost
    # robustness over the whole trajectory: the share of good (learning rate, step) cells
    cells = frame[(frame["step"] > 0) & (frame["method"] != "retrained")]
    good_col = "good" if column == "cost" else "good_paper"
    if good_col in cells:
        out["good cells"] = cells.groupby(keys, sort=False)[good_col].mean()
    div = frame.groupby(RUN_KEYS, sort=False)["status"].apply(lambda s: (s == "diverged").any())
    out["diverged"] = div.groupby(keys).mean()
    out["paper method"] = [_paper(m) for m in out.index.get_level_values("method")]
    return out


def per_replicate(frame: pd.DataFrame, column: str = "cost") -> pd.DataFrame:
    """The robustness score of every (domain, method, optimizer) on each replicate: a
    frame with one column per replicate seed."""
    curves = robustness_curves(utility_costs(frame), column)
    return curves.mean(axis=1).unstack("replicate")


def _paper(method: str) -> bool:

    return method != "retrained" and get_method(method).paper


def ranking(scores: pd.DataFrame, paper_only: bool = False) -> pd.DataFrame:
    """Methods (AdamW) ranked by robustness score per domain (1 = most robust; ties
    share the better rank): a table method x domain."""
    s = scores.xs("adamw", level="optimizer")
    if paper_only:
        s = s[s["paper method"]]
    return s["score"].unstack("domain").rank(ascending=False, method="min")


def most_robust(scores: pd.DataFrame, domain: str, paper_only: bool = False) -> list[str]:
    """The methods (AdamW) with the highest robustness score on ``domain``, ties included;
    none when that score is 0 (a tie at no good cell is no evidence of robustness)."""
    s = scores.xs("adamw", level="optimizer").loc[domain]
    if paper_only:
        s = s[s["paper method"]]
    top = s["score"].max()
    return list(s.index[s["score"] == top]) if top > 0 else []


def hardest_domains(scores: pd.DataFrame) -> list[str]:
    """The domain(s) with the lowest mean robustness score of the paper's methods (AdamW),
    ties included."""
    s = scores.xs("adamw", level="optimizer")
    mean = s[s["paper method"]]["score"].groupby("domain").mean()
    return list(mean.index[mean == mean.min()])


def best_lr(frame: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Per domain and method (AdamW): the learning rate of least utility cost at target
    (the referee's view) on the first replicate, and what it costs there (``cost``) and
    on the other replicates (``cost on replicate S``): chosen on one sample, reported on
    another. ``reached`` False when no learning rate reaches the reference."""
    costs = utility_costs(frame)
    costs = costs[(costs["optimizer"] == "adamw") & (costs["method"] != "retrained")]
    first, *others = profile.grid_seeds
    rows = []
    for (domain, method), g in costs.groupby(["domain", "method"], sort=False):
        g1 = g[g["replicate"] == first].sort_values(["cost", "lr"])
        if not len(g1):
            continue
        pick = g1.iloc[0]
        row = {
            "domain": domain,
            "method": method,
            "lr": pick["lr"],
            "reached": bool(math.isfinite(pick["cost"])),
            "cost": pick["cost"],
        }
        for s in others:
            o = g[(g["replicate"] == s) & (g["lr"] == pick["lr"])]
            row[f"cost on replicate {s}"] = float(o["cost"].iloc[0]) if len(o) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index(["domain", "method"])


# --- tuning guidelines: derived on two domains, checked on the third ----------------


def _first_seed_adamw(frame: pd.DataFrame) -> pd.DataFrame:
    """The first replicate's AdamW runs, evaluated steps only (no retrained-model row)."""
    col = "replicate" if "replicate" in frame else "seed"
    first = frame.groupby("domain")[col].transform("min")
    return frame[
        (frame["optimizer"] == "adamw")
        & (frame[col] == first)
        & (frame["step"] > 0)
        & (frame["method"] != "retrained")
    ]


def _pick_method(f: pd.DataFrame) -> str:
    """The method with the highest share of good cells in ``f`` (ties: paper order)."""

    share = f.groupby("method")["good"].mean()
    return max(share.index, key=lambda m: (share[m], -list(METHODS).index(m)))


def _lr_rule(f: pd.DataFrame) -> dict:
    """Per method: the learning rate with the most good cells (ties: the smaller); only
    methods with at least one good cell."""
    out = {}
    for method, g in f.groupby("method"):
        n = g.groupby("lr")["good"].sum()
        if n.max() > 0:
            out[method] = min(n.index[n == n.max()])
    return out


def _stop_rule(f: pd.DataFrame) -> tuple[float, float, int]:
    """Over runs that reach the target: share whose first step at the target is good, share
    whose last step is good, number of such runs."""
    at_target, at_end = [], []
    for _, g in f.groupby(["domain", "method", "lr"]):
        g = g[g["status"] == "finished"].sort_values("step")
        hit = g[g["forget_rel"] >= 1]
        if len(hit) and len(g):
            at_target.append(bool(hit.iloc[0]["good"]))
            at_end.append(bool(g.iloc[-1]["good"]))
    n = len(at_target)
    return (sum(at_target) / n if n else math.nan, sum(at_end) / n if n else math.nan, n)


def _fails_first(f: pd.DataFrame) -> dict:
    """Over runs that leave the tolerance: how many leave it first on retain, first on
    general, or on both at the same evaluated step."""
    count = {"retain": 0, "general": 0, "both": 0}
    for _, g in f.groupby(["domain", "method", "lr"]):
        g = g.sort_values("step")
        r = g[g["retain_rel"] > 1 + TOLERANCE]["step"].min()
        q = g[g["general_rel"] > 1 + TOLERANCE]["step"].min()
        if pd.isna(r) and pd.isna(q):
            continue
        if pd.isna(q) or (not pd.isna(r) and r < q):
            count["retain"] += 1
        elif pd.isna(r) or q < r:
            count["general"] += 1
        else:
            count["both"] += 1
    return count


def _method_guideline(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    method = _pick_method(train)
    test_rank = test.groupby("method")["good"].mean().rank(ascending=False, method="min")
    share_train = train[train["method"] == method]["good"].mean()
    share_test = test[test["method"] == method]["good"].mean()
    return {
        "derived": f"{method} (good cells {share_train:.0%})",
        "on held-out": f"rank {int(test_rank[method])} (good cells {share_test:.0%})",
        # no good cell to derive from: nothing holds
        "holds": bool(share_train > 0 and share_test > 0 and test_rank[method] <= 2),
        "determined": bool(share_train > 0),
    }


def _lr_guideline(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    lrs = _lr_rule(train)
    ok = [
        m for m, lr in lrs.items() if test[(test["method"] == m) & (test["lr"] == lr)]["good"].any()
    ]
    return {
        "derived": ", ".join(f"{m} {lr:g}" for m, lr in lrs.items()) or "none",
        "on held-out": f"a good cell at that lr for {len(ok)} of {len(lrs)} methods",
        "holds": bool(lrs) and len(ok) >= len(lrs) / 2,
        "determined": bool(lrs),
    }


def _stop_guideline(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    a, b, n = _stop_rule(train)
    c, d, m = _stop_rule(test)
    return {
        "derived": f"good at the target step {a:.0%}, at the last step {b:.0%} ({n} runs)",
        "on held-out": f"{c:.0%} against {d:.0%} ({m} runs)",
        # a direction derived (a != b) and the same one on the held-out domain
        "holds": bool(m) and a != b and c != d and (c > d) == (a > b),
        "determined": bool(n) and bool(m) and a != b,
    }


def _fails_first_guideline(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    x, y = _fails_first(train), _fails_first(test)
    mx, my = max(x, key=x.get), max(y, key=y.get)
    return {
        "derived": f"{mx} first ({x['retain']} retain, {x['general']} general, {x['both']} both)",
        "on held-out": f"{my} first ({y['retain']} retain, {y['general']} general, "
        f"{y['both']} both)",
        "holds": sum(x.values()) > 0 and mx == my,
        "determined": sum(x.values()) > 0 and sum(y.values()) > 0,
    }


GUIDELINES = {
    "method": _method_guideline,
    "learning rate": _lr_guideline,
    "stop at the target": _stop_guideline,
    "what fails first": _fails_first_guideline,
}
"""Each tuning guideline: derived on two domains (``train``), checked on the third."""


def guidelines(frame: pd.DataFrame) -> pd.DataFrame:
    """Four tuning guidelines, each derived on two domains and checked on the third, for
    every choice of the held-out domain (first seed, AdamW cells):

    - **method**: use the method with the highest robustness score on the two domains;
      holds if it has good cells on both sides and ranks in the top two on the held-out
      domain;
    - **learning rate**: per method, the learning rate with the most good cells; holds if
      that learning rate has a good cell on the held-out domain for at least half of the
      methods it was derived for;
    - **stop at the target**: stop at the first evaluated step whose forget perplexity
      reaches the approximate target (no exact model needed) rather than at the end of
      the budget; holds if the two domains show a difference between the two and the
      held-out domain the same direction;
    - **what fails first**: which of retain and general perplexity leaves the tolerance
      first; holds if the held-out domain has the same majority.

    ``determined`` says whether a check can be read at all (something to derive the
    guideline from, and something to check it on): a check without it is no refutation.
    """
    f = _first_seed_adamw(frame)
    rows = []
    for held in dict.fromkeys(f["domain"]):
        train, test = f[f["domain"] != held], f[f["domain"] == held]
        for name, rule in GUIDELINES.items():
            rows.append({"guideline": name, "held-out domain": held, **rule(train, test)})
    return pd.DataFrame(rows).set_index(["guideline", "held-out domain"])
