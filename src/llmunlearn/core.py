"""The numeric core: next-token NLL, written once, used by training losses and metrics.

Shapes: ``input_ids``, ``labels`` and ``attention_mask`` are ``[B, T]`` int64; ``logits``
are ``[B, T, V]``. A label of :data:`IGNORE_INDEX` (padding) contributes nothing. Position
``t`` predicts token ``t + 1`` (the usual causal-LM shift), so a chunk of ``n`` real tokens
has ``n - 1`` scored positions.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from .config import IGNORE_INDEX  # noqa: F401  (re-exported: the one definition)
from .config import TENSOR_COLUMNS


def autocast_for(device) -> contextlib.AbstractContextManager:
    """The training precision for a forward pass on ``device``: bf16 autocast on a GPU (what
    accelerate's ``mixed_precision="bf16"`` gives the training loop, so that a model is
    measured as it is trained), nothing on the CPU (fp32). Weights stay fp32 either way
    (:func:`llmunlearn.models.runtime`)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluated(fn):
    """``fn(model, ...)`` run in inference mode and in the training precision on the
    model's device (:func:`autocast_for`): every measurement of a model, reloaded or in
    training, computes as the loop does."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        # (not a model: the function's own checks name the problem)
        device = next(model.parameters()).device if hasattr(model, "parameters") else "cpu"
        with torch.inference_mode(), autocast_for(device):
            return fn(model, *args, **kwargs)

    return wrapper


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position NLL of the next token, in fp32.

    Returns ``(nll, mask)``, both ``[B, T-1]``: ``nll[b, t] = -log p(labels[b, t+1] | x<=t)``,
    zero where ``mask`` is False (ignored label).
    """
    logits = logits[:, :-1, :].float()
    target = labels[:, 1:]
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        target.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(target.shape)
    return nll, target != IGNORE_INDEX


def chunk_mean(nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-chunk mean of :func:`token_nll`'s output over scored positions, ``[B]``."""
    return nll.sum(1) / mask.sum(1).clamp_min(1)


def chunk_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each chunk, ``[B]``: the paper's CE(c; y)."""
    return chunk_mean(*token_nll(logits, labels))


def model_chunk_nll(model, batch: dict) -> torch.Tensor:
    """Forward ``batch`` through ``model`` and return :func:`chunk_nll` of its labels."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return chunk_nll(out.logits, batch["labels"])


def nll_loss(model, batch: dict) -> torch.Tensor:
    """Training loss: chunk-averaged NLL, so each chunk counts equally (as with the
    official code's one chunk per device)."""
    return model_chunk_nll(model, batch).mean()


def sequence_logprob(model, batch: dict) -> torch.Tensor:
    """Sum of next-token log-probabilities of each chunk, ``[B]`` (NPO's log pi(y|x))."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    nll, _ = token_nll(out.logits, batch["labels"])
    return -nll.sum(1)


def kl_to_reference(model, ref, batch: dict) -> torch.Tensor:
    """Mean over scored positions of KL(p_ref || p_model) for the next token, padding
    masked (the official code averages over padding too). ``ref`` gets no gradient."""
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    logp = torch.log_softmax(model(**inputs).logits[:, :-1].float(), -1)
    with torch.no_grad():
        ref_logp = torch.log_softmax(ref(**inputs).logits[:, :-1].float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp_min(1)


def token_logprob_stats(logits: torch.Tensor, labels: torch.Tensor):
    """Per position: log-probability of the next token, and the mean and variance of the
    log-probability under the model's own next-token distribution (Min-K%++ needs them).

    Returns ``(logp, mu, var, mask)``, each ``[B, T-1]``.
    """
    nll, mask = token_nll(logits, labels)
    logp_all = torch.log_softmax(logits[:, :-1].float(), -1)
    p = logp_all.exp()
    mu = (p * logp_all).sum(-1)
    var = (p * logp_all.square()).sum(-1) - mu.square()
    return -nll, mu, var.clamp_min(0), mask


def batch_token_stats(logits: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Per chunk of one batch (``logits`` ``[B, T, V]`` and labels): token
    log-probabilities, Min-K%++ standardised values and mean NLL, what
    :func:`llmunlearn.measurement.mia.chunk_token_stats` collects from a forward pass."""
    logp, mu, var, mask = token_logprob_stats(logits, labels)
    out = []
    for i in range(len(logp)):
        m = mask[i]
        lp = logp[i][m].cpu().numpy()
        z = ((logp[i][m] - mu[i][m]) / var[i][m].sqrt().clamp_min(1e-6)).cpu().numpy()
        out.append({"logp": lp, "z": z, "nll": float(-lp.mean())})
    return out


def length_sorted_batches(chunks, batch_size: int, device):
    """Evaluation batches of a chunked dataset, longest chunks first, each batch cut to its
    longest chunk's real tokens: ``(indices, batch)`` pairs, ``indices`` the rows of
    ``chunks`` in the batch. Chunks are right-padded and attention is causal, so the cut
    removes padding only and no scored position changes (a short document's chunk no
    longer pays for 128 positions). Callers put per-chunk results back by ``indices``."""
    ds = chunks.with_format("torch", columns=TENSOR_COLUMNS)
    mask = chunks.with_format("torch", columns=["attention_mask"])[:]["attention_mask"]
    lengths = mask.sum(1).tolist()
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, {k: v.to(device) for k, v in trim_padding(ds[idx]).items()}


def trim_padding(batch: dict) -> dict:
    """``batch`` cut to its longest chunk's real tokens (every ``[B, T]`` tensor): chunks
    are right-padded and every loss and metric masks padding, so only padding goes."""
    width = max(1, int(batch["attention_mask"].sum(1).max()))
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}
