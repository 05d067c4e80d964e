"""Task-vector negation (Ilharco et al. 2023), from the survey.

Fine-tune the original model on the forget set (loss = +CE), then subtract alpha times the
change: theta = theta_0 - alpha (theta_ft - theta_0). Training minimises the fine-tuning
loss; every evaluation, and the saved model, use the negated weights.
"""

import copy

import torch

from ...core import nll_loss
from . import register


@torch.no_grad()
def negate(model, original, hp):
    """theta_0 - alpha (theta - theta_0), as a new model."""
    out = copy.deepcopy(model)
    base = dict(original.named_parameters())
    for name, p in out.named_parameters():
        p.copy_(base[name] - hp["alpha"] * (p - base[name]))
    return out


@register("task_vector", needs_reference=True, defaults={"alpha": 1.0}, evaluate_as=negate)
def task_vector(model, batches, ref=None, hp=None):
    """Task-vector negation: fine-tune on forget, then subtract alpha times the change."""
    return nll_loss(model, batches["forget"])
