"""Results as tidy tables: one row per (run, evaluated step), loadable in one call."""

from __future__ import annotations

import pandas as pd

from .runs import Run


def trajectory_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per (unlearning run, evaluated step): method, domain, lr, steps, status,
    step, tokens, ``ppl_<split>``, ``acc_<split>``, and whether the row is the selected
    step of its run (:func:`llmunlearn.unlearning.select_step`)."""
    rows = []
    for run in runs:
        cfg, summ = run.config, run.summary
        for ev in summ["evals"]:
            rows.append({
                "run": run.path.name, "method": cfg["method"], "domain": cfg["domain"],
                "lr": cfg["train"]["lr"], "steps": cfg["train"]["steps"],
                "status": summ["status"], "target": summ["target"],
                "selected": ev["step"] == summ["selected"]["step"], **ev})
    return pd.DataFrame(rows)


def before_after(run: Run) -> pd.DataFrame:
    """Perplexity per split for the original model (step 0), the selected step and the
    last step of one unlearning run, with the approximate-retraining target."""
    summ = run.summary
    evals = summ["evals"]
    rows = {"original model": evals[0], f"selected (step {summ['selected']['step']})":
            summ["selected"], f"last (step {evals[-1]['step']})": evals[-1]}
    splits = [k[4:] for k in evals[0] if k.startswith("ppl_")]
    return pd.DataFrame({name: [r[f"ppl_{s}"] for s in splits] for name, r in rows.items()},
                        index=pd.Index(splits, name="perplexity on")).T


def split_table(splits: dict) -> pd.DataFrame:
    """Documents and characters per split of one domain (from :func:`load_splits`)."""
    return pd.DataFrame({
        split: {"documents": len(docs), "characters": sum(len(d.text) for d in docs)}
        for split, docs in splits.items()}).T.rename_axis("split")


def pretrain_table(run: Run) -> pd.DataFrame:
    """Perplexity of a pre-trained model on every split: rows domain, columns split.
    Forget below approximate means the model memorised some of its training data."""
    return pd.DataFrame(run.summary["ppl"]).T.rename_axis("domain")
