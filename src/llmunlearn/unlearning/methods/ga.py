"""Gradient ascent (GA): raise the forget set's next-token loss.

Paper: maximise CE(c; x) on forget chunks, i.e. minimise ``-CE``. There is no retain
term, so nothing holds utility in place; the regularised variants add one.
"""

from ...core import nll_loss
from . import register


@register("ga", paper=True)
def gradient_ascent(model, batches, ref=None, hp=None):
    """Gradient ascent on the forget set: loss = -CE(forget)."""
    return -nll_loss(model, batches["forget"])
