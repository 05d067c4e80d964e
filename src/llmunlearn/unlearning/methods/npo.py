"""Negative preference optimisation (NPO; Zhang et al. 2024), from the survey.

DPO with the forget data as rejected answers and no preferred ones:
loss = (2 / beta) * mean log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta), with log pi the
chunk's summed next-token log-probability. At theta = ref its gradient is GA's gradient
(of the summed log-likelihood); as the forget likelihood falls, the weight
sigma(beta * log ratio) shrinks, which slows the collapse GA runs into. ``npo_gd`` adds
lambda times the NLL on the domain's retain split.
"""

import torch
import torch.nn.functional as F

from ...core import nll_loss, sequence_logprob
from . import register


def npo_term(model, ref, batch, beta):
    logp = sequence_logprob(model, batch)
    with torch.no_grad():
        ref_logp = sequence_logprob(ref, batch)
    return (2.0 / beta) * F.softplus(beta * (logp - ref_logp)).mean()


@register("npo", needs_reference=True, defaults={"beta": 0.1})
def npo(model, batches, ref=None, hp=None):
    """Negative preference optimisation: (2/beta) log(1 + (pi/pi_ref)^beta) on forget."""
    return npo_term(model, ref, batches["forget"], hp["beta"])


@register("npo_gd", retain="in", needs_reference=True, defaults={"beta": 0.1, "lambda": 1.0})
def npo_gd(model, batches, ref=None, hp=None):
    """NPO plus lambda times the NLL on the domain's retain split."""
    return npo_term(model, ref, batches["forget"], hp["beta"]) + hp["lambda"] * nll_loss(
        model, batches["retain"]
    )
