"""Results as tidy tables: one row per (run, evaluated step), loadable in one call."""

from __future__ import annotations

import pandas as pd

from ..data.corpus import source_id
from ..measurement.metrics import metric
from ..runs import Run


def trajectory_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per (unlearning run, evaluated step): method, domain, lr, steps, status,
    step, tokens, ``ppl_<split>``, ``acc_<split>``, and whether the row is the selected
    step of its run (:func:`llmunlearn.unlearning.runner.select_step`)."""
    rows = []
    for run in runs:
        cfg, summ = run.config, run.summary
        for ev in summ["evals"]:
            rows.append(
                {
                    "run": run.path.name,
                    "method": cfg["method"],
                    "domain": cfg["domain"],
                    "lr": cfg["train"]["lr"],
                    "steps": cfg["train"]["steps"],
                    "status": summ["status"],
                    "target": summ["target"],
                    "selected": ev["step"] == summ["selected"]["step"],
                    **{k: v for k, v in ev.items() if k != "perplexity"},
                }
            )  # flat columns only
    return pd.DataFrame(rows)


def before_after(run: Run) -> pd.DataFrame:
    """Perplexity per split for the original model (step 0), the selected step and the
    last step of one unlearning run, with the approximate-retraining target."""
    summ = run.summary
    evals = summ["evals"]
    rows = {
        "original model": evals[0],
        f"selected (step {summ['selected']['step']})": summ["selected"],
        f"last (step {evals[-1]['step']})": evals[-1],
    }
    splits = [k[4:] for k in evals[0] if k.startswith("ppl_")]
    return pd.DataFrame(
        {name: [r[f"ppl_{s}"] for s in splits] for name, r in rows.items()},
        index=pd.Index(splits, name="perplexity on"),
    ).T


def split_table(splits: dict) -> pd.DataFrame:
    """Documents and characters per split of one domain (from :func:`load_splits`)."""
    return pd.DataFrame(
        {
            split: {"documents": len(docs), "characters": sum(len(d.text) for d in docs)}
            for split, docs in splits.items()
        }
    ).T.rename_axis("split")


def pretrain_table(run: Run, design: str = "matched") -> pd.DataFrame:
    """Perplexity of a pre-trained model on every split of ``design``: rows domain,
    columns split (forget, approximate, retain; general's retain and evaluation). Forget
    below approximate means the model memorised some of its training data."""
    rows = {}
    for domain, splits in run.summary["ppl"].items():
        rows[domain] = {
            key.removeprefix(f"{design}/"): v
            for key, v in splits.items()
            if "/" not in key or key.startswith(f"{design}/")
        }
    return pd.DataFrame(rows).T.rename_axis("domain")


def corpus_table(documents: pd.DataFrame) -> pd.DataFrame:
    """Per domain and split: documents, groups, characters, tokens, chunks (from
    :func:`llmunlearn.data.corpus.document_table`)."""
    return documents.groupby(["domain", "split"], sort=False).agg(
        documents=("id", "size"),
        groups=("group", "nunique"),
        characters=("characters", "sum"),
        tokens=("tokens", "sum"),
        chunks=("chunks", "sum"),
    )


def licence_table(documents: pd.DataFrame) -> pd.DataFrame:
    """Per source package: its licence, the domains it feeds, documents and characters."""
    return (
        documents.groupby(["source", "license"])
        .agg(
            domains=("domain", lambda s: ", ".join(sorted(set(s)))),
            documents=("id", "size"),
            characters=("characters", "sum"),
        )
        .reset_index()
    )


def zoo_frame(zoo: dict[str, Run]) -> pd.DataFrame:
    """Long table of the zoo's perplexities: model, domain, design, split, ppl (the
    retain and general splits, shared by both designs, have design ``"both"``)."""
    rows = []
    for name, run in zoo.items():
        for d, splits in run.summary["ppl"].items():
            for key, v in splits.items():
                design, _, split = key.rpartition("/")
                rows.append(
                    {
                        "model": name,
                        "domain": d,
                        "design": design or "both",
                        "split": split,
                        "ppl": v,
                    }
                )
    return pd.DataFrame(rows)


def zoo_table(zoo: dict[str, Run]) -> pd.DataFrame:
    """Perplexity of every model of the zoo (rows) on every domain, design and split
    (columns)."""
    return zoo_frame(zoo).pivot_table(
        index="model", columns=["domain", "design", "split"], values="ppl", sort=False
    )


def memorisation_gaps(zoo: dict[str, Run]) -> pd.DataFrame:
    """Per domain and design (``zoo`` from :func:`~llmunlearn.training.pretraining.full_zoo`):
    approximate / forget perplexity of the original model (> 1: it memorised its forget
    set), of the exact retrained model for that design (close to 1 if the approximate set
    is a fair stand-in for unseen forget data) and of the second seed; and the retrained
    model's forget perplexity over the original model's approximate perplexity (R: the
    paper's approximate-retraining assumption is that it is close to 1). A design whose
    retrained models the zoo lacks (``retrained_designs``) has NaN in their columns."""
    ppl = {name: run.summary["ppl"] for name, run in zoo.items()}
    rows = []
    for d in [d for d in ppl["original"] if d != "general"]:
        for design in ("matched", "shifted"):
            f, a = f"{design}/forget", f"{design}/approximate"
            o, s2 = ppl["original"][d], ppl["original-seed2"][d]
            retrained = ppl.get(f"retrained-{d}-{design}")
            r = retrained[d] if retrained else {f: float("nan"), a: float("nan")}
            rows.append(
                {
                    "domain": d,
                    "design": design,
                    "original: approximate / forget": o[a] / o[f],
                    "retrained: approximate / forget": r[a] / r[f],
                    "second seed: approximate / forget": s2[a] / s2[f],
                    "retrained forget / original approximate": r[f] / o[a],
                }
            )
    return pd.DataFrame(rows).set_index(["domain", "design"])


def split_groups(documents: pd.DataFrame, top: int = 4) -> pd.DataFrame:
    """Per domain and split (from :func:`llmunlearn.data.corpus.document_table`): documents,
    the source documents they were cut from (the same number when the profile keeps whole
    documents), groups, the largest group's share of the split's characters, and the
    ``top`` groups by characters (what a split is made of, not just how big it is)."""

    rows = []
    for (domain, split), g in documents.groupby(["domain", "split"], sort=False):
        by_group = g.groupby("group")["characters"].sum().sort_values(ascending=False)
        rows.append(
            {
                "domain": domain,
                "split": split,
                "documents": len(g),
                "sources": g["id"].map(source_id).nunique(),
                "groups": len(by_group),
                "largest group share": by_group.iloc[0] / by_group.sum(),
                "largest groups": ", ".join(
                    f"{name} ({n / by_group.sum():.0%})" for name, n in by_group.head(top).items()
                ),
            }
        )
    return pd.DataFrame(rows).set_index(["domain", "split"])


def cost_table(zoo: dict[str, Run]) -> pd.DataFrame:
    """Per model: parameters, optimiser steps, trained tokens, FLOPs (6 N T) and wall time,
    each from scratch (a late-order model's base included), and what the model itself
    trained beyond its shared base (``branch tokens``, ``branch wall_s``; the whole run for
    the mixed order)."""
    keys = ("n_params", "steps", "tokens", "flops", "wall_s")
    return pd.DataFrame(
        {
            name: {
                **{k: run.summary[k] for k in keys},
                "branch tokens": run.summary.get("branch_tokens", run.summary["tokens"]),
                "branch wall_s": run.summary.get("branch_wall_s", run.summary["wall_s"]),
            }
            for name, run in zoo.items()
        }
    ).T.rename_axis("model")


PPL_COLUMNS = ["ppl_forget", "ppl_approximate", "ppl_retain", "ppl_general"]


def unlearning_table(runs: dict[str, Run], original: dict, retrained: dict) -> pd.DataFrame:
    """The paper's results table for one domain: perplexity on forget / approximate /
    retain / general at each method's selected step, with reference rows for the original
    model, the approximate-retraining target (the original's perplexity on the whole
    approximate set, the paper's stand-in for a retrained model on the forget set) and the
    exact retrained model. ``original`` and ``retrained`` are :func:`evaluate_reference` rows."""
    ref = {
        "original model": {**original, "status": "reference"},
        "approximate-retraining target": {
            "ppl_forget": original.get("whole_approximate_ppl", original["ppl_approximate"]),
            "status": "reference",
        },
        "exact retrained model": {**retrained, "status": "reference"},
    }
    rows = {
        name: {k: v for k, v in r.items() if k in PPL_COLUMNS or k == "status"}
        for name, r in ref.items()
    }
    for method, run in runs.items():
        s = run.summary
        sel = s["selected"]
        rows[method] = {
            **{k: sel[k] for k in PPL_COLUMNS},
            "step": sel["step"],
            "reached target": sel["reached_target"],
            "status": s["status"],
            "TFLOPs": s["flops"] / 1e12,
            "wall s": s["wall_s"],
        }
    table = pd.DataFrame(rows).T
    table.columns = [
        c.replace("ppl_", "") + (" ppl" if c.startswith("ppl_") else "") for c in table.columns
    ]
    return table.rename_axis("method")


def evaluation_frame(evaluations: dict[str, dict[str, Run]]) -> pd.DataFrame:
    """One row per (domain, model) from :func:`llmunlearn.unlearning.runner.evaluate_domain`
    results (``{domain: {model: run}}``): perplexities, every MIA AUC (unfolded, folded,
    interval), verbatim memorisation, utility and the KL to the retrained model."""
    rows = []
    for domain, models in evaluations.items():
        for name, run in models.items():
            s = run.summary
            row = {"domain": domain, "model": name}
            row.update({f"ppl_{k}": v["ppl"] for k, v in s["perplexity"].items()})
            for attack, r in s["mia"].items():
                if isinstance(r, dict) and "auc" in r:
                    row.update({f"{attack}|{k}": v for k, v in r.items()})
            row.update(
                {f"verbatim_{k}": s["verbatim"][k] for k in ("exact_match_tokens", "rouge_l")}
            )
            row["utility_accuracy"] = s["utility"]["accuracy"]
            row["kl_to_retrained"] = s.get("to_retrained", {}).get("kl")
            rows.append(row)
    return pd.DataFrame(rows)


def lm_eval_frame(runs: dict[str, dict[str, Run]]) -> pd.DataFrame:
    """One row per (domain, model, lm-eval task) from
    :func:`llmunlearn.studies.utility.lm_eval_domain` results (``{domain: {model: run}}``): every
    metric lm-eval reported, and for the battery the comparison with our evaluator
    (:func:`llmunlearn.studies.utility.battery_check`: ``ours``, ``same_choice``,
    ``n_same_tokens``, ``same_choice_same_tokens``)."""
    rows = []
    for domain, models in runs.items():
        for name, run in models.items():
            s = run.summary
            for task, metrics in s["results"].items():
                row = {
                    "domain": domain,
                    "model": name,
                    "task": task,
                    "n": s["n_samples"].get(task),
                    **metrics,
                }
                if s.get("battery_check") and task == "llmunlearn_battery":
                    row.update(
                        {k: v for k, v in s["battery_check"].items() if k not in ("n", "lm_eval")}
                    )
                rows.append(row)
    return pd.DataFrame(rows)


def mia_table(frame: pd.DataFrame, attack: str = "min_k@0.3") -> pd.DataFrame:
    """Per domain and model: the attack's AUC with its 95 % interval, the paper's folded
    AUC, and the gap to the exact retrained model's AUC (the privacy target; 0 is ideal)."""
    t = frame[
        [
            "domain",
            "model",
            f"{attack}|auc",
            f"{attack}|ci_low",
            f"{attack}|ci_high",
            f"{attack}|auc_folded",
        ]
    ].copy()
    t.columns = ["domain", "model", "AUC", "CI low", "CI high", "folded AUC (paper)"]
    retrained = t[t["model"] == "retrained"].set_index("domain")["AUC"]
    t["AUC - retrained AUC"] = t["AUC"] - t["domain"].map(retrained)
    return t.set_index(["domain", "model"])


def metric_guide(columns) -> pd.DataFrame:
    """For the metric columns among ``columns`` (a frame's, or names): each one's label and
    which direction is better, from the registry (:data:`llmunlearn.measurement.metrics.METRICS`).
    Columns that are not metrics (domain, model, step, interval bounds) are left out."""

    rows = []
    for c in columns:
        try:
            m = metric(c)
        except KeyError:
            continue
        rows.append({"column": c, "metric": m.label, "better": m.direction})
    return pd.DataFrame(rows).set_index("column")
