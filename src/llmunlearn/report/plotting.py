"""Figures. Each function returns a matplotlib Figure and says what it shows."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.ticker import NullFormatter
from matplotlib.patches import Patch

from ..measurement.metrics import metric
from ..studies.retraining import EQUIVALENCE_BAND
from ..studies.robustness import robustness_curves, rule_columns, utility_costs
from .results import zoo_frame


def _done(fig):
    """Close ``fig`` in pyplot so notebooks show it once, where the chapter glues it."""
    plt.close(fig)
    return fig


SPLIT_COLOURS = {
    "forget": "#d62728",
    "approximate": "#7f7f7f",
    "retain": "#1f77b4",
    "general": "#2ca02c",
}


def plot_trajectory(frame, title: str = ""):
    """Perplexity of every split along an unlearning run (log scale), with the
    approximate-retraining target as a dashed line and the selected step marked."""
    sns.set_theme(style="whitegrid")
    long = frame.melt(
        id_vars=["step"],
        value_vars=[c for c in frame if c.startswith("ppl_")],
        var_name="split",
        value_name="perplexity",
    )
    long["split"] = long["split"].str.removeprefix("ppl_")
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    sns.lineplot(
        long, x="step", y="perplexity", hue="split", marker="o", ax=ax, palette=SPLIT_COLOURS
    )
    ax.axhline(
        frame["target"].iloc[0],
        ls="--",
        color="black",
        lw=1,
        label="target: original model on approximate",
    )
    sel = frame[frame["selected"]]
    if len(sel):
        ax.axvline(sel["step"].iloc[0], ls=":", color="grey", lw=1, label="selected step")
    ax.set_yscale("log")
    ax.set_xlabel("unlearning step")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _done(fig)


def plot_document_lengths(documents):
    """Distribution of document length in tokens, one panel per domain, one colour per
    split (log scale): whether forget, retain and approximate are comparable."""
    sns.set_theme(style="whitegrid")
    g = sns.displot(
        documents,
        x="tokens",
        hue="split",
        col="domain",
        kind="ecdf",
        log_scale=True,
        height=2.6,
        aspect=1.0,
        facet_kws={"sharex": False},
        palette=_split_palette(documents["split"].unique()),
    )
    g.set_axis_labels("document length (tokens, log scale)", "fraction of documents")
    g.set_titles("{col_name}")
    g.figure.tight_layout()
    return _done(g.figure)


def _split_palette(splits) -> dict:
    """Colours for split names, the designs' ``shifted/forget`` lighter than ``matched``."""
    base = {**SPLIT_COLOURS, "evaluation": "#9467bd"}
    out = {}
    for s in splits:
        design, _, split = s.rpartition("/")
        colour = base.get(split, "#444444")
        out[s] = sns.light_palette(colour, 3)[1] if design == "shifted" else colour
    return out


def plot_loss_curves(zoo):
    """Training loss against tokens seen for every model of the zoo."""

    sns.set_theme(style="whitegrid")
    frame = pd.DataFrame(
        [{"model": name, **row} for name, run in zoo.items() for row in run.summary["log"]]
    )
    frame["smoothed loss"] = frame.groupby("model")["loss"].transform(
        lambda s: s.rolling(20, min_periods=1).mean()
    )
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.lineplot(frame, x="tokens", y="smoothed loss", hue="model", ax=ax, lw=1.2)
    ax.set_xlabel("tokens trained on")
    ax.set_ylabel("training loss (running mean of 20 steps)")
    fig.tight_layout()
    return _done(fig)


def plot_zoo_perplexity(zoo):
    """Forget vs approximate perplexity per domain (columns) and split design (rows) for
    the original model, that domain and design's exact retrained model and the second
    seed (``zoo`` from :func:`~llmunlearn.training.pretraining.full_zoo`): the memorisation gap
    and how retraining closes it."""

    sns.set_theme(style="whitegrid")
    frame = zoo_frame(zoo)
    frame = frame[frame["split"].isin(["forget", "approximate"]) & (frame["domain"] != "general")]
    frame = frame[
        frame["model"].isin(["original", "original-seed2"])
        | (frame["model"] == "retrained-" + frame["domain"] + "-" + frame["design"])
    ].copy()
    frame.loc[frame["model"].str.startswith("retrained"), "model"] = "retrained"
    g = sns.catplot(
        frame,
        x="model",
        y="ppl",
        hue="split",
        col="domain",
        row="design",
        kind="bar",
        height=2.6,
        aspect=1.1,
        sharey=False,
        order=["original", "retrained", "original-seed2"],
        palette={k: SPLIT_COLOURS[k] for k in ("forget", "approximate")},
    )
    g.set_axis_labels("", "perplexity")
    g.set_titles("{col_name}, {row_name}")
    for ax in g.axes.flat:
        ax.tick_params(axis="x", rotation=25)
    g.figure.tight_layout()
    return _done(g.figure)


def plot_ground_truth(table):
    """Left: R = exact retrained forget perplexity / original approximate perplexity with
    its 95 % interval per domain and design (1 = the paper's stand-in is exact; grey band:
    the equivalence band of the rule). Right: the retrained model's Min-K% AUC with its interval
    (0.5 = membership inference cannot tell two unseen sets apart)."""
    sns.set_theme(style="whitegrid")
    t = table.reset_index()
    labels = t["domain"] + " / " + t["design"]
    y = list(range(len(t)))
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 0.5 * len(t) + 1.6), sharey=True)
    colours = {"matched": "#1f77b4", "shifted": "#ff7f0e"}
    auc = "retrained AUC min_k@0.3"

    axes[0].axvspan(1 / EQUIVALENCE_BAND, EQUIVALENCE_BAND, color="grey", alpha=0.15, lw=0)
    axes[0].axvline(1, color="black", lw=1)
    axes[1].axvline(0.5, color="black", lw=1)
    for i, row in t.iterrows():
        c = colours.get(row["design"], "black")
        axes[0].errorbar(
            row["R"],
            i,
            xerr=[[row["R"] - row["R low"]], [row["R high"] - row["R"]]],
            fmt="o",
            color=c,
            capsize=3,
        )
        axes[1].errorbar(
            row[auc],
            i,
            xerr=[[row[auc] - row[f"{auc} low"]], [row[f"{auc} high"] - row[auc]]],
            fmt="o",
            color=c,
            capsize=3,
        )
    axes[0].scatter(
        t["seed ratio"],
        y,
        marker="x",
        color="grey",
        zorder=3,
        label="second seed / original,\napproximate set",
    )
    for design in t["design"].unique():
        axes[0].plot([], [], "o", color=colours.get(design, "black"), label=f"{design} design")
    axes[0].set_xlabel("R = retrained forget ppl / original approximate ppl")
    axes[0].legend(fontsize=7, loc="best")
    axes[1].set_xlabel("retrained model's Min-K% AUC (k = 0.3)")
    axes[1].set_yticks(list(y), labels)
    axes[1].invert_yaxis()
    fig.tight_layout()
    return _done(fig)


def plot_method_trajectories(frame, retrained: dict | None = None):
    """Small multiples, one per method: forget, retain and general perplexity along the
    run (log scale), the approximate-retraining target (dashed) and the exact retrained
    model's forget perplexity (dotted)."""
    sns.set_theme(style="whitegrid")
    cols = [c for c in ("ppl_forget", "ppl_retain", "ppl_general") if c in frame]
    long = frame.melt(
        id_vars=["method", "step", "target"],
        value_vars=cols,
        var_name="split",
        value_name="perplexity",
    )
    long["split"] = long["split"].str.removeprefix("ppl_")
    g = sns.relplot(
        long,
        x="step",
        y="perplexity",
        hue="split",
        col="method",
        col_wrap=4,
        kind="line",
        marker="o",
        markersize=3,
        height=2.2,
        aspect=1.2,
        palette=SPLIT_COLOURS,
        facet_kws={"sharey": False},
    )
    for method, ax in g.axes_dict.items():
        ax.axhline(frame["target"].iloc[0], ls="--", color="black", lw=0.8)
        if retrained is not None:
            ax.axhline(retrained["ppl_forget"], ls=":", color="#d62728", lw=1)
        ax.set_yscale("log")
    g.set_titles("{col_name}")
    g.set_axis_labels("unlearning step", "perplexity")
    g.figure.tight_layout()
    sns.move_legend(g, "lower right", bbox_to_anchor=(0.97, 0.08), frameon=True)
    return _done(g.figure)


def plot_mia_auc(frame, attack: str = "min_k@0.3"):
    """Unfolded MIA AUC with its 95 % bootstrap interval for every model, per domain. The
    grey line is 0.5 (cannot tell members from non-members); the red band is the exact
    retrained model's AUC, the target an unlearned model should match."""
    sns.set_theme(style="whitegrid")
    domains = list(dict.fromkeys(frame["domain"]))
    fig, axes = plt.subplots(
        1, len(domains), figsize=(3.4 * len(domains), 4.2), sharey=True, squeeze=False
    )
    for ax, d in zip(axes[0], domains):
        f = frame[frame["domain"] == d].reset_index(drop=True)
        y = range(len(f))
        ax.errorbar(
            f[f"{attack}|auc"],
            y,
            xerr=[
                f[f"{attack}|auc"] - f[f"{attack}|ci_low"],
                f[f"{attack}|ci_high"] - f[f"{attack}|auc"],
            ],
            fmt="o",
            color="#1f77b4",
            ms=4,
            capsize=2,
        )
        ax.axvline(0.5, color="grey", lw=1)
        r = f[f["model"] == "retrained"]
        if len(r):
            ax.axvspan(
                float(r[f"{attack}|ci_low"].iloc[0]),
                float(r[f"{attack}|ci_high"].iloc[0]),
                color="#d62728",
                alpha=0.12,
            )
        ax.set_yticks(list(y), f["model"])
        ax.set_title(d)
        ax.set_xlabel(f"AUC ({attack})\nbest: the retrained model's (red band)")
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return _done(fig)


def plot_roc(evaluations, models=("original", "retrained", "ga_gd_in")):
    """ROC curves of the Min-K% attack for a few models, per domain, on log-log axes (the
    low false-positive region, where a membership attack has to work, is visible)."""
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(
        1, len(evaluations), figsize=(3.2 * len(evaluations), 3.2), squeeze=False
    )
    for ax, (d, runs) in zip(axes[0], evaluations.items()):
        for m in models:
            if m in runs:
                roc = runs[m].summary["mia"]["roc"]
                ax.step(roc["fpr"], roc["tpr"], where="post", label=m)
                floor = 1 / max(2, len(roc["fpr"]))
        ax.plot([1e-3, 1], [1e-3, 1], ls="--", color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(max(1e-3, floor / 2), 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_title(d)
        ax.set_xlabel("false-positive rate")
    axes[0][0].set_ylabel("true-positive rate")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _done(fig)


def plot_k_sensitivity(frame, models=("original", "retrained", "ga", "ga_gd_in")):
    """Min-K% AUC against k, per domain, for a few models."""

    sns.set_theme(style="whitegrid")
    cols = [c for c in frame if c.startswith("min_k@") and c.endswith("|auc")]
    long = frame[frame["model"].isin(models)].melt(
        id_vars=["domain", "model"], value_vars=cols, var_name="k", value_name="AUC"
    )
    long["k"] = pd.to_numeric(long["k"].str.extract(r"@([\d.]+)")[0])
    g = sns.relplot(
        long,
        x="k",
        y="AUC",
        hue="model",
        col="domain",
        kind="line",
        marker="o",
        height=2.8,
        aspect=1.0,
    )
    for ax in g.axes.flat:
        ax.axhline(0.5, color="grey", lw=0.8)
    g.set_titles("{col_name}")
    g.figure.tight_layout()
    return _done(g.figure)


def plot_cost(costs):
    """FLOPs of every pre-training and unlearning run (log scale)."""

    sns.set_theme(style="whitegrid")
    frame = costs.copy()
    frame["run"] = frame["name"] + frame["domain"].map(lambda d: f" ({d})" if pd.notna(d) else "")
    frame = frame.sort_values("flops")
    fig, ax = plt.subplots(figsize=(6.4, 0.16 * len(frame) + 1.2))
    sns.scatterplot(frame, y="run", x="flops", hue="kind", ax=ax, s=30)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs (log scale)")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    return _done(fig)


def plot_harness_agreement(battery):
    """Utility battery accuracy by lm-evaluation-harness against ours, one point per
    (domain, model) of :func:`llmunlearn.report.results.lm_eval_frame`'s battery rows: on the
    diagonal when both score the same items the same way; chance level dotted."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    sns.scatterplot(battery, x="ours", y="acc", hue="domain", style="domain", s=50, ax=ax)
    lo = min(battery["ours"].min(), battery["acc"].min(), 0.25) - 0.02
    hi = max(battery["ours"].max(), battery["acc"].max()) + 0.02
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="same accuracy")
    ax.axvline(0.25, color="grey", lw=1, ls=":")
    ax.axhline(0.25, color="grey", lw=1, ls=":", label="chance (0.25)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("accuracy, llmunlearn.evaluation")
    ax.set_ylabel("accuracy, lm-evaluation-harness")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _done(fig)


GRID_STATES = {
    "good": "#2ca02c",
    "target not reached": "#c7d7e8",  # outside the forget band (short or overshot)
    "utility broken": "#ff9f40",
    "target missed, utility broken": "#d62728",
    "diverged": "#000000",
}
"""What a grid cell can be (:func:`llmunlearn.studies.robustness.good` and its failures),
and its colour."""


def grid_states(frame):
    """The :data:`GRID_STATES` name of every row of a
    :func:`llmunlearn.studies.robustness.grid_frame` (the referee's rule,
    :func:`~llmunlearn.studies.robustness.rule_columns`: forget reached and membership
    equivalent, utility within the tolerance; the paper's view where there is no referee)."""

    f = frame if "kept" in frame else rule_columns(frame)
    if "forget_ok" in f:
        referee = (f["forget_ok"] & f["member_ok"]).astype(bool)
        reached = referee.where(f["forget_ref"].notna(), f["paper_ok"]).fillna(False)
    else:
        reached = f["paper_ok"]
    reached, kept = reached.astype(bool), f["kept"].astype(bool)
    return np.select(
        [frame["status"] == "diverged", reached & kept, ~reached & kept, reached & ~kept],
        ["diverged", "good", "target not reached", "utility broken"],
        "target missed, utility broken",
    )


def plot_grid(frame, domain: str, seed: int | None = None):
    """Small multiples, one per method (and optimiser): learning rate (rows) by evaluated
    step (columns) on ``domain`` at ``seed`` (default: the first), each cell coloured by
    its state (one shared legend); the number in a cell is its forget perplexity over the
    exact retrained model's (over the approximate target where there is none). "Target"
    in the legend is the band around that reference."""

    f = frame[(frame["domain"] == domain) & (frame["step"] > 0)]
    f = f[f["method"] != "retrained"]
    rep = "replicate" if "replicate" in f else "seed"
    f = f[f[rep] == (f[rep].min() if seed is None else seed)].copy()
    value = "forget_ref" if "forget_ref" in f and f["forget_ref"].notna().any() else "forget_rel"
    f["state"] = list(grid_states(f))
    f["panel"] = np.where(
        f["optimizer"] == "adamw", f["method"], f["method"] + " (" + f["optimizer"] + ")"
    )
    panels = list(dict.fromkeys(f["panel"]))
    codes = {s: i for i, s in enumerate(GRID_STATES)}
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), squeeze=False)
    cmap = ListedColormap(list(GRID_STATES.values()))
    for ax, panel in zip(axes.flat, panels):
        g = f[f["panel"] == panel]
        code = g.pivot_table(
            index="lr", columns="step", values="state", aggfunc=lambda s: codes[s.iloc[0]]
        ).sort_index(ascending=False)
        rel = g.pivot_table(index="lr", columns="step", values=value, aggfunc="first").reindex_like(
            code
        )
        ax.imshow(
            code.to_numpy(float), cmap=cmap, vmin=-0.5, vmax=len(GRID_STATES) - 0.5, aspect="auto"
        )
        for (i, j), v in np.ndenumerate(rel.to_numpy(float)):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.1f}" if v < 10 else f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if code.iloc[i, j] in (3, 4) else "black",
                )
        ax.set_xticks(range(code.shape[1]), code.columns)
        ax.set_yticks(range(code.shape[0]), [f"{lr:.1e}" for lr in code.index])
        ax.set_title(panel, fontsize=9)
        ax.grid(False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    for ax in axes[-1, :]:
        ax.set_xlabel("step")
    fig.legend(
        handles=[Patch(color=c, label=s) for s, c in GRID_STATES.items()],
        loc="lower center",
        ncol=len(GRID_STATES),
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _done(fig)


def plot_robustness(scores):
    """Robustness score (area under the robustness curve) per method and domain: the mean
    over replicates (bar; blue: the paper's methods, purple: the survey's, grey: the exact
    retrained model, the referee) and the range over replicates (black line)."""
    sns.set_theme(style="whitegrid")
    s = scores.reset_index()
    s["label"] = s["method"].where(
        s["optimizer"].isin(["adamw", "-"]), s["method"] + " (" + s["optimizer"] + ")"
    )
    domains = list(dict.fromkeys(s["domain"]))
    fig, axes = plt.subplots(
        1,
        len(domains),
        figsize=(3.4 * len(domains), 0.28 * s["label"].nunique() + 1.4),
        sharey=True,
        squeeze=False,
    )
    order = list(dict.fromkeys(s["label"]))
    for ax, d in zip(axes[0], domains):
        g = s[s["domain"] == d].set_index("label").reindex(order)
        y = range(len(order))
        colours = [
            "#7f7f7f" if m == "retrained" else "#1f77b4" if p else "#9467bd"
            for m, p in zip(g["method"], g["paper method"])
        ]
        ax.barh(list(y), g["score"].fillna(0), color=colours)
        several = (g["replicates"] > 1).fillna(False)
        ax.hlines(
            [i for i, k in zip(y, several) if k],
            g["score_min"][several],
            g["score_max"][several],
            color="black",
            lw=2,
        )
        ax.set_yticks(list(y), order)
        ax.set_xlim(0, 1)
        ax.set_title(d)
        ax.set_xlabel("robustness score (area)")
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return _done(fig)


def plot_robustness_curves(frame, domain: str):
    """The robustness curve of every method (AdamW) on ``domain``, first replicate: the
    share of learning rates whose utility cost at the retrained model's forget perplexity
    stays under each tolerance; the exact retrained model dashed."""

    sns.set_theme(style="whitegrid")
    curves = robustness_curves(utility_costs(frame[frame["domain"] == domain]))
    first = curves.index.get_level_values("replicate").min()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for (d, method, opt, rep), row in curves.iterrows():
        if rep != first or opt not in ("adamw", "-"):
            continue
        style = {"ls": "--", "color": "black", "lw": 2} if method == "retrained" else {}
        ax.step([100 * t for t in row.index], row.to_numpy(), where="post", label=method, **style)
    ax.set_xlabel("utility tolerance (% rise of held-out retain or general perplexity)")
    ax.set_ylabel("share of learning rates")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(domain)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return _done(fig)


def plot_relearning(frame):
    """Held-out forget perplexity over the original model's (log scale) against
    relearning steps, one line per model (mean over seeds, band: range), per domain. The
    original model (grey) is the level "back"; the exact retrained model (thick red) is
    how fast a model that never saw the data relearns."""
    sns.set_theme(style="whitegrid")
    domains = list(dict.fromkeys(frame["domain"]))
    fig, axes = plt.subplots(
        1, len(domains), figsize=(3.8 * len(domains), 3.6), sharey=True, squeeze=False
    )
    models = list(dict.fromkeys(frame["model"]))
    palette = dict(zip(models, sns.color_palette("tab20", len(models))))
    palette.update({"original": "#7f7f7f", "retrained": "#d62728"})
    for ax, d in zip(axes[0], domains):
        f = frame[frame["domain"] == d]
        for m in models:
            g = f[f["model"] == m].groupby("step")["ppl_rel"].agg(["mean", "min", "max"])
            if not len(g):
                continue
            ref = m in ("original", "retrained")
            ax.plot(
                g.index,
                g["mean"],
                color=palette[m],
                lw=2.5 if ref else 1.2,
                label=m,
                zorder=3 if ref else 2,
            )
            if (g["max"] > g["min"]).any():
                ax.fill_between(g.index, g["min"], g["max"], color=palette[m], alpha=0.15)
        ax.axhline(1, color="black", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(d)
        ax.set_xlabel("relearning step")
    axes[0][0].set_ylabel(metric("ppl_rel").label)
    axes[0][-1].legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    return _done(fig)


def plot_quantisation(frame):
    """Each model's forget perplexity over the original model's fp32 one (log scale), at
    fp32 and at each quantised width, one panel per domain (a
    :func:`~llmunlearn.studies.quantisation.quantisation_attack` frame, several domains
    concatenated). A model whose knowledge only hides from fp32 moves back toward 1 (the
    dashed line) when quantised; the exact retrained model (red label) shows how much
    quantisation moves a model that never saw the data."""
    sns.set_theme(style="whitegrid")
    domains = list(dict.fromkeys(frame["domain"]))
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(
        1,
        len(domains),
        figsize=(3.4 * len(domains), 0.28 * len(models) + 1.6),
        sharey=True,
        squeeze=False,
    )
    widths = sorted(frame["bits"].unique(), reverse=True)
    style = {32: ("o", "#1f77b4"), 8: ("s", "#ff7f0e"), 4: ("D", "#d62728")}
    for ax, d in zip(axes[0], domains):
        f = frame[frame["domain"] == d]
        base = f[(f["model"] == "original") & (f["bits"] == 32)]["ppl_forget"].iloc[0]
        for b in widths:
            g = f[f["bits"] == b].set_index("model").reindex(models)
            marker, colour = style.get(int(b), ("x", "black"))
            ax.scatter(
                g["ppl_forget"] / base,
                range(len(models)),
                marker=marker,
                color=colour,
                s=28,
                alpha=0.85,
                label="fp32" if b == 32 else f"{b}-bit",
                zorder=3,
            )
        ax.axvline(1, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_title(d)
        ax.set_xlabel("forget ppl / original's (fp32)")
    axes[0][0].set_yticks(range(len(models)), models)
    for label in axes[0][0].get_yticklabels():
        if label.get_text() in ("retrained", "twin"):
            label.set_color("#d62728")
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _done(fig)


VERDICT_COLOURS = {
    "supports": "#2ca02c",
    "contradicts": "#d62728",
    "undetermined": "#c7c7c7",
}
"""Claims figure: a cell's colour by its label's first word."""


def plot_claims(claims):
    """The claims page's figure: one row per claim, one square per domain (or part) it was
    decided on, coloured supports / contradicts / undetermined, the domain's name inside
    and, right of the row, the verdict with "k of n domains" (``claims``: the
    :func:`~llmunlearn.studies.claims.claims_table`)."""
    rows = list(claims.itertuples())
    width = max((len(r.labels) for r in rows), default=1)
    fig, ax = plt.subplots(figsize=(11, 0.46 * len(rows) + 1.0))
    for y, r in enumerate(rows):
        for x, (name, label) in enumerate(r.labels.items()):
            colour = VERDICT_COLOURS.get(label.split(" ")[0], VERDICT_COLOURS["undetermined"])
            ax.add_patch(plt.Rectangle((x, y - 0.4), 0.95, 0.8, color=colour))
            text = _cell_text(name)
            ax.text(x + 0.47, y, text, ha="center", va="center", fontsize=7 - ("\n" in text))
        ax.text(width + 0.1, y, f"{r.verdict} ({r.domains})", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_short(r.claim) for r in rows], fontsize=8)
    ax.set_xlim(0, width + 2.6)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLOURS.values()]
    ax.legend(
        handles,
        list(VERDICT_COLOURS),
        loc="lower center",
        ncol=3,
        fontsize=8,
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    fig.tight_layout()
    return _done(fig)


def _cell_text(name: str, width: int = 10) -> str:
    """A part's name as it fits a square of the claims figure: at most two lines of about
    ``width`` characters, broken at "/", before " vs " or between words."""
    if len(name) <= width:
        return name
    for sep, keep in (("/", "/\n"), (" vs ", "\nvs ")):
        if sep in name:
            head, tail = name.split(sep, 1)
            return head + keep + _short(tail, width + 2)
    lines = textwrap.wrap(name, max(width, (len(name) + 1) // 2))
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def _short(claim: str, n: int = 58) -> str:
    return claim if len(claim) <= n else claim[: n - 1] + "…"


def plot_doses(frame, margin: float | None = None):
    """The dose pilot (:func:`~llmunlearn.studies.pretraining.dose_pilot`): left, the
    memorisation gap M against the dose per domain; right, the original's Min-K% AUC minus
    its exact retrained model's (paired, 95 % interval over source documents; open markers:
    the positive control, the referee's sibling from the same base, against the same
    referee), with 0
    and the equivalence ``margin`` marked."""

    f = frame.reset_index()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4))
    sns.lineplot(data=f, x="dose", y="M", hue="domain", marker="o", ax=a)
    a.set(xscale="log", xlabel="times each forget chunk is seen (dose)", ylabel="M")
    a.set_title("memorisation gap: approximate / forget perplexity")
    doses = sorted(f["dose"].unique())
    for i, (domain, g) in enumerate(f.groupby("domain", sort=False)):
        x = np.asarray(g["dose"], float) * (1 + 0.06 * (i - 1))  # side by side per dose
        line = b.errorbar(
            x,
            g["difference"],
            yerr=[g["difference"] - g["low"], g["high"] - g["difference"]],
            marker="o",
            capsize=3,
            label=domain,
        )
        if "control difference" in g:  # the positive control: open markers, no line
            b.errorbar(
                x * 1.02,
                g["control difference"],
                yerr=[
                    g["control difference"] - g["control low"],
                    g["control high"] - g["control difference"],
                ],
                marker="o",
                mfc="white",
                ls="none",
                capsize=2,
                color=line[0].get_color(),
                label=f"{domain}: positive control",
            )
    b.axhline(0, color="black", lw=0.8)
    if margin is not None:
        b.axhspan(-margin, margin, color="#c7c7c7", alpha=0.4, label="equivalence margin")
    b.set(xscale="log", xlabel="dose", ylabel="AUC original - AUC retrained")
    for ax in (a, b):
        ax.set_xticks(doses)
        ax.set_xticklabels([str(d) for d in doses])
        ax.xaxis.set_minor_formatter(NullFormatter())  # no "3x10^0" beside the doses
    b.set_title("membership against the retrained model")
    b.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    return _done(fig)
