"""Distance to a reference model (the exact retrained model): mean next-token
KL(reference || model) on held-out text, lower is better. The one KL of the package's
evaluation; training's KL term (:func:`llmunlearn.core.kl_to_reference`) is tested to agree
with it."""

from __future__ import annotations

import torch

from ..core import IGNORE_INDEX, autocast_for, evaluated, length_sorted_batches

_REFERENCE_PROBS: dict = {}


REFERENCE_CACHE_BYTES = 2**30
"""Most memory the reference model's next-token distributions may take to be kept for
the process (the ``cpu`` profile's held-out set needs about 270 MB)."""


def reference_distributions(reference, chunks, batch_size: int = 32):
    """The reference model's next-token distribution on ``chunks``, per batch: ``(p,
    sum p log p)`` with ``p`` ``[B, T-1, V]``. Every model of a domain is compared with
    the same reference on the same chunks, so they are kept for the process when their
    size, estimated *before* any is computed (chunks x positions x vocabulary x 4 bytes),
    fits in :data:`REFERENCE_CACHE_BYTES` (one reference at a time); otherwise an iterator
    computes them batch by batch and holds none (at gpu sizes they would take about
    15 GB)."""
    key = (getattr(reference, "name_or_path", None) or id(reference), chunks._fingerprint)
    if key in _REFERENCE_PROBS:
        return _REFERENCE_PROBS[key]
    vocab = reference.get_output_embeddings().weight.shape[0]
    width = len(chunks[0]["input_ids"]) if len(chunks) else 0
    batches = _reference_batches(reference, chunks, batch_size)
    if len(chunks) * max(width - 1, 0) * vocab * 4 > REFERENCE_CACHE_BYTES:
        return batches
    out = list(batches)
    _REFERENCE_PROBS.clear()
    _REFERENCE_PROBS[key] = out
    return out


def _reference_batches(reference, chunks, batch_size: int):
    device = next(reference.parameters()).device
    for _, b in length_sorted_batches(chunks, batch_size, device):
        with torch.inference_mode(), autocast_for(device):
            logits = reference(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        p = logp.exp()
        yield p, (p * logp).sum(-1)


@evaluated
def kl_to(model, reference, chunks, batch_size: int = 32) -> float:
    """Mean over scored positions of KL(p_reference || p_model) for the next token.

    With ``z`` the model's logits, ``log p_model = z - logsumexp(z)`` and ``sum p_ref =
    1``, so ``KL = sum p_ref log p_ref - p_ref . z + logsumexp(z)``: the reference's part
    comes from :func:`reference_distributions`, and the model's log-softmax is never
    materialised."""
    device = next(model.parameters()).device
    reference = reference_distributions(reference, chunks, batch_size)
    total, weight = 0.0, 0
    for (p_ref, neg_entropy), (_, b) in zip(
        reference, length_sorted_batches(chunks, batch_size, device)
    ):
        mask = b["labels"][:, 1:] != IGNORE_INDEX
        z = (
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
            .logits[:, :-1]
            .float()
        )
        kl = neg_entropy - (p_ref * z).sum(-1) + torch.logsumexp(z, -1)
        total += float((kl * mask).sum())
        weight += int(mask.sum())
    return total / max(weight, 1)
