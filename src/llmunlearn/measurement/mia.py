"""Membership inference: does the model still tell forget chunks (members) from approximate
chunks (non-members, never trained on)?

Every attack gives each chunk a score, higher meaning "more likely a member". The AUC of
members against non-members is 0.5 when the model cannot tell them apart (the goal of
unlearning, and what an exactly retrained model should show up to its own generalisation
gap), above 0.5 when members look more familiar, below 0.5 when unlearning overshoots and
members look *less* familiar than unseen text. The paper reports max(AUC, 1 - AUC), which
folds both failures together; we report both.

| attack | score of a chunk |
|---|---|
| ``loss`` | minus the mean token NLL (Yeom et al. 2018) |
| ``zlib`` | mean token log-likelihood over the zlib-compressed length of the text in bytes (Carlini et al. 2021; as the Min-K% reference code) |
| ``min_k`` (k) | mean of the k fraction of lowest token log-probabilities (Shi et al. 2024; the paper's attack) |
| ``min_k_pp`` (k) | the same on log-probabilities standardised by the model's own next-token mean and spread (Zhang et al. 2024) |
| ``reference`` | reference model's mean NLL minus the target model's (Carlini et al. 2022) |

Two checks a sceptical reader runs on any AUC: the true-positive rate at a low
false-positive rate (:func:`tpr_at_fpr`, Carlini et al. 2022), and a *blind baseline*
(:func:`blind_baseline`): a classifier that never looks at the model, trained on the text
alone to tell the same members from the same non-members (Das et al. 2024). An attack
that does not beat the blind baseline measures how the two sets differ, not membership.
"""

# ruff: noqa: E501  (the attack table in the docstring)
from __future__ import annotations

import zlib

import numpy as np
from scipy.stats import bootstrap, mannwhitneyu
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from ..core import batch_token_stats  # noqa: F401  (the per-batch half, beside the loss)
from .metrics import perplexity

K_VALUES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
"""Min-K% fractions (the paper used 0.3-0.6 and 1.0)."""


def chunk_token_stats(model, chunks, batch_size: int = 32) -> list[dict]:
    """Per chunk: token log-probabilities, Min-K%++ standardised values and mean NLL
    (:func:`~llmunlearn.core.batch_token_stats` of each batch, from :func:`llmunlearn.measurement.metrics.perplexity`'s
    forward pass)."""

    return perplexity(model, chunks, batch_size, token_stats=True)["token_stats"]


def min_k(values: np.ndarray, k: float) -> float:
    """Mean of the ``k`` fraction of lowest values (at least one)."""
    n = max(1, int(round(k * len(values))))
    return float(np.sort(values)[:n].mean())


def attack_scores(
    stats: list[dict], texts: list[str], reference: list[dict] | None = None
) -> dict[str, np.ndarray]:
    """Scores of every attack for each chunk (``texts`` are the chunks' decoded text, for
    zlib; ``reference`` the reference model's :func:`chunk_token_stats`)."""
    scores = {
        "loss": np.array([-s["nll"] for s in stats]),
        "zlib": np.array(
            [s["logp"].mean() / len(zlib.compress(t.encode())) for s, t in zip(stats, texts)]
        ),
    }
    for k in K_VALUES:
        scores[f"min_k@{k}"] = np.array([min_k(s["logp"], k) for s in stats])
        scores[f"min_k_pp@{k}"] = np.array([min_k(s["z"], k) for s in stats])
    if reference is not None:
        scores["reference"] = np.array([r["nll"] - s["nll"] for s, r in zip(stats, reference)])
    return scores


def auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(score of a member > score of a non-member), ties counting half: the ROC AUC,
    computed from the Mann-Whitney U statistic (scipy). The sets may differ in size."""

    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    if len(members) == 0 or len(non_members) == 0:
        raise ValueError(
            f"membership inference needs members and non-members; got "
            f"{len(members)} and {len(non_members)}"
        )
    u = mannwhitneyu(members, non_members, alternative="two-sided").statistic
    return float(u / (len(members) * len(non_members)))


def auc_interval(
    members, non_members, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`auc`, resampling members and non-members
    independently (``scipy.stats.bootstrap``)."""

    def pairwise_auc(m, n, axis=-1):  # vectorised over resamples: P(m > n) + P(m = n) / 2
        m, n = np.moveaxis(m, axis, -1)[..., :, None], np.moveaxis(n, axis, -1)[..., None, :]
        return (m > n).mean((-2, -1)) + 0.5 * (m == n).mean((-2, -1))

    res = bootstrap(
        (np.asarray(members, float), np.asarray(non_members, float)),
        pairwise_auc,
        vectorized=True,
        paired=False,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def document_draws(groups, n_resamples: int, rng) -> list[np.ndarray]:
    """``n_resamples`` resamples of whole *documents* (``groups``: each item's document),
    each as the item indices of the drawn documents (a document drawn twice counts
    twice): the unit of a cluster bootstrap."""
    index: dict = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    blocks = [np.asarray(v) for v in index.values()]
    picks = rng.integers(0, len(blocks), (n_resamples, len(blocks)))
    return [np.concatenate([blocks[j] for j in row]) for row in picks]


def _percentiles(values, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def cluster_auc_interval(
    members,
    member_groups,
    non_members,
    non_member_groups,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`auc` that resamples whole *documents*
    (``*_groups``: each chunk's document) on each side independently: a document's chunks
    are correlated, so resampling chunks would give too narrow an interval. Sets may be of
    unequal size. Written with numpy because ``scipy.stats.bootstrap`` resamples single
    observations, not clusters."""
    rng = np.random.default_rng(seed)
    a_all, b_all = np.asarray(members, float), np.asarray(non_members, float)
    out = [
        (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
        for a, b in zip(
            (a_all[i] for i in document_draws(list(member_groups), n_resamples, rng)),
            (b_all[i] for i in document_draws(list(non_member_groups), n_resamples, rng)),
        )
    ]
    return _percentiles(out, confidence)


def cluster_ratio_interval(
    chunk_nll,
    reference_nll,
    groups,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval, over *documents*, of a perplexity ratio between two
    models on the same chunks: exp(mean ``chunk_nll`` - mean ``reference_nll``), the
    chunks of each resampled document taken in both models at once (paired). Vectorised
    as weights (how often each chunk's document was drawn), since every grid row asks."""
    a, b = np.asarray(chunk_nll, float), np.asarray(reference_nll, float)
    if a.shape != b.shape or len(a) != len(groups):
        raise ValueError(
            f"a paired ratio needs the same chunks in both models: got {len(a)} and "
            f"{len(b)} chunk losses for {len(groups)} chunks"
        )
    weights = document_weights(groups, n_resamples, np.random.default_rng(seed))
    return _percentiles(np.exp(weights @ (a - b) / weights.sum(1)), confidence)


def document_weights(groups, n_resamples: int, rng) -> np.ndarray:
    """A cluster bootstrap as weights: resample x item, how often each item's document
    (``groups``) was drawn when the documents are resampled with replacement. Vectorised
    statistics (a weighted mean, a weighted AUC) take it instead of index lists."""
    docs, item_doc = np.unique(np.asarray(groups), return_inverse=True)
    picks = rng.integers(0, len(docs), (n_resamples, len(docs)))
    counts = np.zeros((n_resamples, len(docs)))
    np.add.at(counts, (np.arange(n_resamples)[:, None], picks), 1.0)
    return counts[:, item_doc]


def mia_report(member_scores: dict, non_member_scores: dict, intervals: bool = True) -> dict:
    """Per attack: ``auc`` (unfolded), ``auc_folded`` (the paper's max(AUC, 1 - AUC)),
    the true-positive rate at each of :data:`LOW_FPRS` (``tpr@0.01``, ...; at the smallest
    rate the non-members resolve when that is larger, ``smallest_fpr``) and, if asked,
    the bootstrap interval of the unfolded AUC."""
    out = {}
    for name, m in member_scores.items():
        a = auc(m, non_member_scores[name])
        out[name] = {"auc": a, "auc_folded": max(a, 1 - a)}
        for f in LOW_FPRS:
            out[name][f"tpr@{f:g}"] = tpr_at_fpr(m, non_member_scores[name], f)["tpr"]
        out[name]["smallest_fpr"] = 1 / len(non_member_scores[name])
        if intervals:
            out[name]["ci_low"], out[name]["ci_high"] = auc_interval(m, non_member_scores[name])
    return out


def roc_points(members, non_members) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve (``sklearn.metrics.roc_curve``)."""

    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    fpr, tpr, _ = roc_curve(y, np.r_[members, non_members])
    return fpr, tpr


LOW_FPRS = (0.01, 0.001)
"""The false-positive rates at which the true-positive rate is reported."""


def tpr_at_fpr(members, non_members, fpr: float) -> dict:
    """True-positive rate of the best threshold whose false-positive rate is at most
    ``fpr`` (``sklearn.metrics.roc_curve``). Non-members resolve false-positive rates in
    steps of 1 / their count: below that the smallest resolvable rate is used instead, and
    ``fpr`` in the result says which rate was reached (``asked`` what was asked)."""

    if not 0 < fpr < 1:
        raise ValueError(f"a false-positive rate must lie in (0, 1), got {fpr!r}")
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    if not len(members) or not len(non_members):
        raise ValueError(
            f"membership inference needs members and non-members; got "
            f"{len(members)} and {len(non_members)}"
        )
    resolved = max(fpr, 1 / len(non_members))
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    f, t, _ = roc_curve(y, np.r_[members, non_members])
    ok = f <= resolved + 1e-12
    return {"tpr": float(t[ok].max()), "fpr": float(resolved), "asked": fpr}


def blind_baseline(
    member_texts,
    member_groups,
    non_member_texts,
    non_member_groups,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """How well the *text alone* tells members from non-members: TF-IDF character n-grams
    (2-4, within words) and logistic regression (scikit-learn), cross-validated by
    group (``StratifiedGroupKFold``: no group, a document or a unit of several, has
    chunks in both the training and the scored fold). Returns the out-of-fold ``auc`` with its interval over documents
    (:func:`cluster_auc_interval`), the true-positive rates at :data:`LOW_FPRS` and
    ``folds``. ``folds`` must be at least 2 and at most the documents on the smaller
    side; anything else is a ``ValueError`` naming it, before anything is fitted."""

    docs = min(len(set(member_groups)), len(set(non_member_groups)))
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= docs:
        raise ValueError(
            f"blind-baseline folds must be an integer from 2 to {docs} (the groups on "
            f"the smaller side), got {folds!r}"
        )
    texts = [*member_texts, *non_member_texts]
    y = np.r_[np.ones(len(member_texts)), np.zeros(len(non_member_texts))]
    # one group on both sides is one unit (a package split at random by passage): its
    # members and non-members share a fold, so no fold learns the unit for the label
    groups = [*member_groups, *non_member_groups]
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2),
        LogisticRegression(max_iter=2000),
    )
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    score = cross_val_predict(model, texts, y, groups=groups, cv=cv, method="decision_function")
    m, n = score[: len(member_texts)], score[len(member_texts) :]
    lo, hi = cluster_auc_interval(m, list(member_groups), n, list(non_member_groups), seed=seed)
    return {
        "auc": auc(m, n),
        "ci_low": lo,
        "ci_high": hi,
        "folds": folds,
        **{f"tpr@{f:g}": tpr_at_fpr(m, n, f)["tpr"] for f in LOW_FPRS},
        "smallest fpr": 1 / len(n),
    }
