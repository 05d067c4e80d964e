"""The hyper-parameter grid: every method x learning rate x evaluated step x seed.

The paper's Figure 2 claims that gradient ascent with gradient descent on in-distribution
data is the most robust to learning rate and number of steps. A grid cell is one
(method, optimiser, learning rate, seed, step): each learning rate is one unlearning run
(:func:`llmunlearn.unlearning.unlearn`, the chapters' recipe) evaluated every
``eval_every`` steps, so the steps axis comes with the run. The profile declares the grid
(``grid_lrs``, ``grid_seeds``, ``grid_seed_methods``, ``grid_sophia_methods``): ``cpu``
runs a small one, ``gpu`` a larger one, with this code.

Everything below was fixed before the grid was run (the chapter states it too):

- a cell is **good** when the forget perplexity reaches the approximate-retraining target
  and retain and general perplexity are at most :data:`TOLERANCE` above the original
  model's (the same 10 % the ground-truth verdicts use);
- a method's **robustness score** on a domain is the share of its grid cells (learning
  rates x evaluated steps after step 0) that are good, per seed; the spread over seeds is
  its noise;
- a method's **best learning rate** is, among the learning rates whose run reaches the
  target at some step (first seed, AdamW), the one whose selected step (the selection
  rule of :func:`~llmunlearn.unlearning.select_step`) costs least: the smallest
  max(retain, general) perplexity ratio to the original.
"""

from __future__ import annotations

import math

import pandas as pd

from .config import DOMAINS, Profile, check_choice, check_grid, check_grid_methods
from .runs import Run

TOLERANCE = 0.10
"""How much retain and general perplexity may rise over the original model's in a good
cell (fixed before the grid was run)."""


def grid_cells(profile: Profile, methods=None) -> list[dict]:
    """The grid's runs: method, optimizer, lr and seed of each (see the module doc).
    A grid with no learning rate is a ``ValueError``."""
    from .methods import METHODS, get_method

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
    cells = []
    for m in methods:
        for lr in profile.grid_lrs:
            cells.append({"method": m, "optimizer": "adamw", "lr": lr, "seed": first})
            cells += [
                {"method": m, "optimizer": "adamw", "lr": lr, "seed": s}
                for s in others
                if m in seeded
            ]
            if m in profile.grid_sophia_methods:
                cells.append({"method": m, "optimizer": "sophia", "lr": lr, "seed": first})
    return cells


def is_default(profile: Profile, cell: dict) -> bool:
    """Whether ``cell`` is the chapters' run (the profile's learning rate and seed, AdamW):
    its model is kept for the privacy and utility chapters."""
    return (
        cell["optimizer"] == "adamw"
        and math.isclose(cell["lr"], profile.unlearn_lr)
        and cell["seed"] == profile.seed
    )


def run_grid(
    profile: Profile, domain: str, original: Run | None = None, methods=None, progress: bool = True
) -> list[tuple[dict, Run]]:
    """Run (or reuse) every cell of the grid on ``domain``: a list of (cell, run). Runs
    are cached one by one, so an interrupted grid resumes where it stopped. Only the
    chapters' own runs keep their weights."""
    from .progress import progress_bar as tqdm

    from .pretraining import pretrain
    from .unlearning import unlearn

    check_choice("domain", domain, DOMAINS)
    cells = grid_cells(profile, methods)  # every value checked before any run starts
    original = original or pretrain(profile, progress=False)
    out = []
    with tqdm(cells, desc=f"grid on {domain}", unit="run", disable=not progress) as bar:
        for cell in bar:
            bar.set_postfix_str(
                f"{cell['method']} {cell['optimizer']} lr={cell['lr']:g} seed={cell['seed']}",
                refresh=False,
            )
            out.append(
                (
                    cell,
                    unlearn(
                        profile,
                        domain,
                        cell["method"],
                        lr=cell["lr"],
                        seed=cell["seed"],
                        optimizer=cell["optimizer"],
                        original=original,
                        keep_model=is_default(profile, cell),
                        progress=False,
                    ),
                )
            )
    return out


def grid_frame(
    profile: Profile, domains=DOMAINS, zoo: dict | None = None, progress: bool = True
) -> pd.DataFrame:
    """One row per grid cell (domain, method, optimizer, lr, seed, step) from the cached
    runs (run if missing): the perplexities, ``forget_rel`` (forget perplexity over the
    target: >= 1 reached), ``retain_rel`` and ``general_rel`` (over the original model's),
    ``auc`` (Min-K% 0.3, forget against approximate) and ``auc_gap`` (minus the exact
    retrained model's AUC on the same chunks), ``status`` and ``good``. A run that
    diverged has rows for the steps it never reached, with status ``diverged``."""
    from .evaluation import evaluate_reference
    from .pretraining import pretrain_zoo

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    rows = []
    for domain in domains:
        original = evaluate_reference(profile, domain, zoo["original"])
        retrained = (
            evaluate_reference(profile, domain, zoo[f"retrained-{domain}"])
            if f"retrained-{domain}" in zoo
            else None
        )
        for cell, run in run_grid(profile, domain, zoo["original"], progress=progress):
            summ, steps = run.summary, run.config["train"]["steps"]
            evals = {e["step"]: e for e in summ["evals"] if e["step"] > 0}
            every = profile.eval_every
            for step in sorted({*range(every, steps + 1, every), steps}):
                e = evals.get(step)
                row = {
                    "domain": domain,
                    **cell,
                    "step": step,
                    "target": summ["target"],
                    "status": "finished" if e is not None else "diverged",
                }
                if e is not None:
                    row.update({k: e[k] for k in e if k.startswith(("ppl_", "auc"))})
                    row["forget_rel"] = e["ppl_forget"] / summ["target"]
                    row["retain_rel"] = e["ppl_retain"] / original["ppl_retain"]
                    row["general_rel"] = e["ppl_general"] / original["ppl_general"]
                    if retrained is not None:
                        row["auc_gap"] = e["auc"] - retrained["auc"]
                rows.append(row)
    frame = pd.DataFrame(rows)
    frame["good"] = good(frame)
    return frame


def good(frame: pd.DataFrame) -> pd.Series:
    """Whether each row is a good cell: finished, forget perplexity at or above the target,
    retain and general perplexity at most :data:`TOLERANCE` above the original's."""
    return (
        (
            (frame["status"] == "finished")
            & (frame["forget_rel"] >= 1)
            & (frame["retain_rel"] <= 1 + TOLERANCE)
            & (frame["general_rel"] <= 1 + TOLERANCE)
        )
        .fillna(False)
        .astype(bool)
    )


def robustness(frame: pd.DataFrame) -> pd.DataFrame:
    """Per domain, method and optimizer: the robustness score (share of good cells) at
    each seed, its mean, min and max over seeds, and its two halves over all cells and
    seeds: the share that reaches the target and the share that keeps retain and general
    within the tolerance; plus the share of cells that diverged."""
    keys = ["domain", "method", "optimizer"]
    f = frame.assign(
        reached=(frame["forget_rel"] >= 1).fillna(False),
        kept=(
            (frame["retain_rel"] <= 1 + TOLERANCE) & (frame["general_rel"] <= 1 + TOLERANCE)
        ).fillna(False),
        diverged=frame["status"] == "diverged",
    )
    per_seed = f.groupby([*keys, "seed"])["good"].mean().rename("score").reset_index()
    out = per_seed.groupby(keys)["score"].agg(
        score="mean", score_min="min", score_max="max", seeds="count"
    )
    out = out.join(f.groupby(keys)[["reached", "kept", "diverged"]].mean())
    out["paper method"] = [_paper(m) for m in out.index.get_level_values("method")]
    return out


def _paper(method: str) -> bool:
    from .methods import get_method

    return get_method(method).paper


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
    """Per domain and method (first seed, AdamW): the best learning rate of the grid by
    the rule in the module doc, its selected step and what that step costs; ``reached``
    False when no learning rate reaches the target (then the row is the learning rate
    that came closest, at its last step)."""
    f = frame[(frame["optimizer"] == "adamw") & (frame["seed"] == profile.grid_seeds[0])]
    rows = []
    for (domain, method), g in f.groupby(["domain", "method"], sort=False):
        picks = []
        for lr, r in g.groupby("lr"):
            r = r[r["status"] == "finished"].sort_values("step")
            hit = r[r["forget_rel"] >= 1]
            if len(hit):
                sel = hit.iloc[0]
                picks.append((0, max(sel["retain_rel"], sel["general_rel"]), lr, sel))
            elif len(r):
                sel = r.iloc[-1]
                picks.append((1, -sel["forget_rel"], lr, sel))
        if not picks:
            rows.append({"domain": domain, "method": method, "reached": False})
            continue
        missed, _, lr, sel = min(picks, key=lambda p: (p[0], p[1], p[2]))
        rows.append(
            {
                "domain": domain,
                "method": method,
                "lr": lr,
                "step": sel["step"],
                "reached": not missed,
                "forget_rel": sel["forget_rel"],
                "retain_rel": sel["retain_rel"],
                "general_rel": sel["general_rel"],
                "good": bool(sel["good"]),
            }
        )
    return pd.DataFrame(rows).set_index(["domain", "method"])


# --- tuning guidelines: derived on two domains, checked on the third ----------------


def _first_seed_adamw(frame: pd.DataFrame) -> pd.DataFrame:
    first = frame.groupby("domain")["seed"].transform("min")
    return frame[(frame["optimizer"] == "adamw") & (frame["seed"] == first)]


def _pick_method(f: pd.DataFrame) -> str:
    """The method with the highest share of good cells in ``f`` (ties: paper order)."""
    from .methods import METHODS

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
    """
    f = _first_seed_adamw(frame)
    domains = list(dict.fromkeys(f["domain"]))
    rows = []
    for held in domains:
        train, test = f[f["domain"] != held], f[f["domain"] == held]
        method = _pick_method(train)
        test_rank = test.groupby("method")["good"].mean().rank(ascending=False, method="min")
        share_train = train[train["method"] == method]["good"].mean()
        share_test = test[test["method"] == method]["good"].mean()
        rows.append(
            {
                "guideline": "method",
                "held-out domain": held,
                "derived": f"{method} (good cells {share_train:.0%})",
                "on held-out": f"rank {int(test_rank[method])} (good cells {share_test:.0%})",
                # no good cell to derive from: nothing holds
                "holds": bool(share_train > 0 and share_test > 0 and test_rank[method] <= 2),
            }
        )
        lrs = _lr_rule(train)
        ok = [
            m
            for m, lr in lrs.items()
            if test[(test["method"] == m) & (test["lr"] == lr)]["good"].any()
        ]
        rows.append(
            {
                "guideline": "learning rate",
                "held-out domain": held,
                "derived": ", ".join(f"{m} {lr:g}" for m, lr in lrs.items()) or "none",
                "on held-out": f"a good cell at that lr for {len(ok)} of {len(lrs)} methods",
                "holds": bool(lrs) and len(ok) >= len(lrs) / 2,
            }
        )
        a, b, n = _stop_rule(train)
        c, d, m = _stop_rule(test)
        rows.append(
            {
                "guideline": "stop at the target",
                "held-out domain": held,
                "derived": f"good at the target step {a:.0%}, at the last step {b:.0%} ({n} runs)",
                "on held-out": f"{c:.0%} against {d:.0%} ({m} runs)",
                # a direction derived (a != b) and the same one on the held-out domain
                "holds": bool(m) and a != b and c != d and (c > d) == (a > b),
            }
        )
        x, y = _fails_first(train), _fails_first(test)
        mx, my = max(x, key=x.get), max(y, key=y.get)
        rows.append(
            {
                "guideline": "what fails first",
                "held-out domain": held,
                "derived": f"{mx} first ({x['retain']} retain, {x['general']} general, "
                f"{x['both']} both)",
                "on held-out": f"{my} first ({y['retain']} retain, {y['general']} "
                f"general, {y['both']} both)",
                "holds": sum(x.values()) > 0 and mx == my,
            }
        )
    return pd.DataFrame(rows).set_index(["guideline", "held-out domain"])
