"""Figures. Each function returns a matplotlib Figure and says what it shows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() == "agg" else None
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

SPLIT_COLOURS = {"forget": "#d62728", "approximate": "#7f7f7f", "retain": "#1f77b4",
                 "general": "#2ca02c"}


def plot_trajectory(frame, title: str = ""):
    """Perplexity of every split along an unlearning run (log scale), with the
    approximate-retraining target as a dashed line and the selected step marked."""
    sns.set_theme(style="whitegrid")
    long = frame.melt(id_vars=["step"], value_vars=[c for c in frame if c.startswith("ppl_")],
                      var_name="split", value_name="perplexity")
    long["split"] = long["split"].str.removeprefix("ppl_")
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    sns.lineplot(long, x="step", y="perplexity", hue="split", marker="o", ax=ax,
                 palette=SPLIT_COLOURS)
    ax.axhline(frame["target"].iloc[0], ls="--", color="black", lw=1,
               label="target: original model on approximate")
    sel = frame[frame["selected"]]
    if len(sel):
        ax.axvline(sel["step"].iloc[0], ls=":", color="grey", lw=1, label="selected step")
    ax.set_yscale("log")
    ax.set_xlabel("unlearning step")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
