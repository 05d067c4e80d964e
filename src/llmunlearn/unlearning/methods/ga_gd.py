"""Gradient ascent on the forget set plus gradient descent on a retain set.

Paper: -CE(forget) + lambda * CE(retain) with lambda = 1, forget and retain chunks 1:1.
The official code alternates forget and retain micro-batches, which averages to half of
this update; we take both terms in every step. ``ga_gd_in`` uses the domain's retain split
(in-distribution), ``ga_gd_general`` general/retain.
"""

from ...core import nll_loss
from . import register


def ga_plus_gd(model, batches, ref=None, hp=None):
    """Forget term of GA plus lambda times the retain NLL."""
    return -nll_loss(model, batches["forget"]) + hp["lambda"] * nll_loss(model, batches["retain"])


@register("ga_gd_in", retain="in", defaults={"lambda": 1.0}, paper=True)
def ga_gd_in(model, batches, ref=None, hp=None):
    """GA + GD on in-distribution retain data: -CE(forget) + lambda CE(domain/retain)."""
    return ga_plus_gd(model, batches, ref, hp)


@register("ga_gd_general", retain="general", defaults={"lambda": 1.0}, paper=True)
def ga_gd_general(model, batches, ref=None, hp=None):
    """GA + GD on general data: -CE(forget) + lambda CE(general/retain)."""
    return ga_plus_gd(model, batches, ref, hp)
