"""Evaluation metrics. Each says which direction is better.

Perplexity (the paper's definition): ``exp`` of the *chunk-averaged* mean token NLL, each
chunk counting equally, padding excluded, in fp32. On the forget set an unlearned model
should move *up* towards the approximate-retraining target; on retain and general data
lower (closer to the original model) is better.
"""

from __future__ import annotations

import math

import torch

from .core import chunk_mean, token_nll
from .config import TENSOR_COLUMNS


@torch.inference_mode()
def perplexity(model, chunks, batch_size: int = 32, token_stats: bool | str = False) -> dict:
    """Perplexity and next-token accuracy of ``model`` on a chunked dataset.

    Returns ``ppl`` (paper: exp of mean per-chunk NLL), ``ppl_token`` (exp of the
    token-weighted NLL), ``acc`` (next-token accuracy), ``chunk_nll`` (list, one per
    chunk), ``n_chunks`` and ``n_tokens`` (scored positions). With ``token_stats``, also
    ``token_stats``: :func:`llmunlearn.mia.chunk_token_stats` of the same forward pass
    (membership inference reads the chunks whose perplexity is measured: one pass serves
    both). ``token_stats="logp"`` keeps only what the loss and Min-K% attacks read
    (``logp`` and ``nll`` per chunk), without the full-vocabulary passes of Min-K%++.
    """
    if len(chunks) == 0:
        raise ValueError("cannot compute perplexity of an empty set of chunks")
    from .mia import batch_token_stats

    device = next(model.parameters()).device
    per_chunk, nll_sum, n_tok, n_correct, stats = [], 0.0, 0, 0, []
    ds = chunks.with_format("torch", columns=TENSOR_COLUMNS)
    for start in range(0, len(ds), batch_size):
        b = {k: v.to(device) for k, v in ds[start:start + batch_size].items()}
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        nll, mask = token_nll(logits, b["labels"])
        per_chunk += chunk_mean(nll, mask).tolist()
        nll_sum += float(nll.sum())
        n_tok += int(mask.sum())
        pred = logits[:, :-1].argmax(-1)
        n_correct += int(((pred == b["labels"][:, 1:]) & mask).sum())
        if token_stats == "logp":
            stats += [{"logp": (-nll[i][mask[i]]).cpu().numpy(),
                       "nll": float(nll[i][mask[i]].mean())} for i in range(len(nll))]
        elif token_stats:
            stats += batch_token_stats(logits, b["labels"])
    mean_chunk = sum(per_chunk) / len(per_chunk)
    return {
        "ppl": _safe_exp(mean_chunk), "ppl_token": _safe_exp(nll_sum / n_tok),
        "acc": n_correct / n_tok, "chunk_nll": per_chunk,
        "n_chunks": len(per_chunk), "n_tokens": n_tok,
        **({"token_stats": stats} if token_stats else {}),
    }


def _safe_exp(x: float) -> float:
    """exp that returns ``inf`` instead of raising on overflow (diverged models)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
