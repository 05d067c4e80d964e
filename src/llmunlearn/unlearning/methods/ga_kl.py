"""Gradient ascent on the forget set plus a KL term that keeps the model close to the
original on a retain set.

Paper: -CE(forget) + lambda * KL(p_ref || p_theta) on retain chunks (the official code
computes the cross-entropy from the reference distribution, which has the same gradient).
The official code averages over all positions including padding; we mask padding.
"""

from ...core import kl_to_reference, nll_loss
from . import register


def ga_plus_kl(model, batches, ref, hp):
    return -nll_loss(model, batches["forget"]) + hp["lambda"] * kl_to_reference(
        model, ref, batches["retain"]
    )


@register("ga_kl_in", retain="in", needs_reference=True, defaults={"lambda": 1.0}, paper=True)
def ga_kl_in(model, batches, ref=None, hp=None):
    """GA + KL on in-distribution retain data: -CE(forget) + lambda KL(ref || model)."""
    return ga_plus_kl(model, batches, ref, hp)


@register(
    "ga_kl_general", retain="general", needs_reference=True, defaults={"lambda": 1.0}, paper=True
)
def ga_kl_general(model, batches, ref=None, hp=None):
    """GA + KL on general data: -CE(forget) + lambda KL(ref || model) on general/retain."""
    return ga_plus_kl(model, batches, ref, hp)
