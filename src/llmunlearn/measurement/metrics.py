"""Evaluation metrics. Each says which direction is better.

Perplexity (the paper's definition): ``exp`` of the *chunk-averaged* mean token NLL, each
chunk counting equally, padding excluded, in fp32. On the forget set an unlearned model
should move *up* towards the approximate-retraining target; on retain and general data
lower (closer to the original model) is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from ..core import batch_token_stats, chunk_mean, evaluated, length_sorted_batches, token_nll


@evaluated
def perplexity(model, chunks, batch_size: int = 32, token_stats: bool | str = False) -> dict:
    """Perplexity and next-token accuracy of ``model`` on a chunked dataset.

    Returns ``ppl`` (paper: exp of mean per-chunk NLL), ``ppl_token`` (exp of the
    token-weighted NLL), ``acc`` (next-token accuracy), ``chunk_nll`` (list, one per
    chunk), ``n_chunks`` and ``n_tokens`` (scored positions). With ``token_stats``, also
    ``token_stats``: :func:`llmunlearn.measurement.mia.chunk_token_stats` of the same forward pass
    (membership inference reads the chunks whose perplexity is measured: one pass serves
    both). ``token_stats="logp"`` keeps only what the loss and Min-K% attacks read
    (``logp`` and ``nll`` per chunk), without the full-vocabulary passes of Min-K%++.
    """
    if len(chunks) == 0:
        raise ValueError("cannot compute perplexity of an empty set of chunks")
    device = next(model.parameters()).device
    per_chunk, stats = [0.0] * len(chunks), [None] * len(chunks)
    nll_sum, n_tok, n_correct = 0.0, 0, 0
    for idx, b in length_sorted_batches(chunks, batch_size, device):
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        nll, mask = token_nll(logits, b["labels"])
        for i, v in zip(idx, chunk_mean(nll, mask).tolist()):
            per_chunk[i] = v
        nll_sum += float(nll.sum())
        n_tok += int(mask.sum())
        pred = logits[:, :-1].argmax(-1)
        n_correct += int(((pred == b["labels"][:, 1:]) & mask).sum())
        if token_stats == "logp":
            for j, i in enumerate(idx):
                row = nll[j][mask[j]]
                stats[i] = {"logp": (-row).cpu().numpy(), "nll": float(row.mean())}
        elif token_stats:
            for i, st in zip(idx, batch_token_stats(logits, b["labels"])):
                stats[i] = st
    mean_chunk = sum(per_chunk) / len(per_chunk)
    return {
        "ppl": _safe_exp(mean_chunk),
        "ppl_token": _safe_exp(nll_sum / n_tok),
        "acc": n_correct / n_tok,
        "chunk_nll": per_chunk,
        "n_chunks": len(per_chunk),
        "n_tokens": n_tok,
        **({"token_stats": stats} if token_stats else {}),
    }


def _safe_exp(x: float) -> float:
    """exp that returns ``inf`` instead of raising on overflow (diverged models)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# --------------------------------------------------------------- metric registry --
@dataclass(frozen=True)
class Metric:
    """A metric as the tidy frames name it (``key``), its label for tables and axes, and
    which direction is better: ``higher_is_better`` True or False, or None when the best
    value is a reference (``ideal``), as for forget perplexity (the target) or the
    membership-inference AUC (the exact retrained model's)."""

    key: str
    label: str
    higher_is_better: bool | None
    ideal: str | None = None

    @property
    def direction(self) -> str:
        if self.higher_is_better is None:
            return f"best at {self.ideal}"
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def axis_label(self) -> str:
        arrow = {True: " (higher is better)", False: " (lower is better)"}
        return self.label + arrow.get(self.higher_is_better, "")


METRICS: dict[str, Metric] = {}
"""Every metric the evaluation rows and tidy frames hold: key -> :class:`Metric`. The
tables, the plots and the tests read directions from here, nowhere else."""


def register_metric(
    key: str, label: str, higher_is_better: bool | None, ideal: str | None = None
) -> Metric:
    """Add a metric to :data:`METRICS` (in the spirit of lm-evaluation-harness's
    ``register_metric``); a key registered twice, or a metric with no direction and no
    ideal, is a ``ValueError``."""
    if key in METRICS:
        raise ValueError(f"metric {key!r} is already registered")
    if higher_is_better is None and not ideal:
        raise ValueError(f"metric {key!r} needs a direction (higher_is_better) or an ideal")
    METRICS[key] = Metric(key, label, higher_is_better, ideal)
    return METRICS[key]


def metric(key: str) -> Metric:
    """The registered metric of a column name; a membership-inference column
    ``<attack>|<field>`` (``min_k@0.3|auc``) is the registered ``mia|<field>``."""
    if key in METRICS:
        return METRICS[key]
    attack, _, field = key.partition("|")
    if field and f"mia|{field}" in METRICS:
        return METRICS[f"mia|{field}"]
    raise KeyError(f"no registered metric {key!r}; registered: {', '.join(sorted(METRICS))}")


TARGET = "the approximate-retraining target (the original model's approximate perplexity)"
RETRAINED_AUC = (
    "the exact retrained model's AUC (0.5 where forget and approximate are exchangeable)"
)
for _key, _label, _better, _ideal in (
    ("ppl_forget", "forget perplexity", None, TARGET),
    ("ppl_approximate", "approximate perplexity", None, "the original model's"),
    ("ppl_retain", "retain perplexity", False, None),
    ("ppl_general", "general perplexity", False, None),
    ("acc_forget", "forget next-token accuracy", None, "the exact retrained model's"),
    ("acc_approximate", "approximate next-token accuracy", None, "the original model's"),
    ("acc_retain", "retain next-token accuracy", True, None),
    ("acc_general", "general next-token accuracy", True, None),
    ("auc", "Min-K% AUC (k = 0.3), forget vs approximate", None, RETRAINED_AUC),
    ("auc_loss", "loss-attack AUC, forget vs approximate", None, RETRAINED_AUC),
    (
        "auc_all",
        "Min-K% AUC (k = 0.3), every evaluated forget vs approximate chunk",
        None,
        RETRAINED_AUC,
    ),
    (
        "auc_diff",
        "Min-K% AUC - exact retrained model's on the same chunks (paired)",
        None,
        "0 (within the equivalence margin)",
    ),
    ("mia|auc", "membership-inference AUC", None, RETRAINED_AUC),
    (
        "mia|auc_folded",
        "folded AUC, max(AUC, 1 - AUC) (the paper's)",
        None,
        "the exact retrained model's",
    ),
    ("verbatim_exact_match_tokens", "verbatim continuation, exactly matching tokens", False, None),
    ("verbatim_rouge_l", "verbatim continuation, ROUGE-L F1", False, None),
    ("utility_accuracy", "utility battery accuracy (chance 0.25)", True, None),
    ("kl_to_retrained", "KL(retrained || model) on held-out text", False, None),
    ("forget_rel", "forget perplexity / target", None, "1 or above (the target reached)"),
    ("retain_rel", "retain perplexity / original's", False, None),
    ("general_rel", "general perplexity / original's", False, None),
    ("auc_gap", "AUC - exact retrained model's AUC", None, "0"),
    (
        "forget_ref",
        "forget perplexity / exact retrained model's",
        None,
        "1 (within the forget band either way)",
    ),
    ("mia|tpr@0.01", "true-positive rate at 1 % false positives", None, RETRAINED_AUC),
    ("mia|tpr@0.001", "true-positive rate at 0.1 % false positives", None, RETRAINED_AUC),
    (
        "ppl_rel",
        "held-out forget perplexity / original's",
        None,
        "the exact retrained model's (relearning)",
    ),
):
    register_metric(_key, _label, _better, _ideal)
