"""Representation misdirection for unlearning (RMU; Li et al. 2024, WMDP), from the survey.

At one layer, push the forget chunks' hidden states towards a fixed random direction
scaled by ``steer``, and keep the retain chunks' hidden states where the original model
puts them: loss = mean ||h(forget) - steer * u||^2 + alpha * mean ||h(retain) - h_ref(retain)||^2,
over real (unpadded) tokens. ``layer`` indexes the model's hidden states as Python does (0
is the embedding output, 1 the first block's output, -1 the last, normalised, output);
WMDP steers layer 7 of 32, we default to the first block of our small models. The WMDP
code updates only three MLPs below the layer; we update every parameter, as every other
method here does.
"""

import torch

from . import register


def _hidden(model, batch, layer):
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_hidden_states=True,
    )
    return out.hidden_states[layer]


def _direction(width, seed, device):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(width, generator=g)
    return (u / u.norm()).to(device)


def _masked_mse(a, b, mask):
    per_token = ((a.float() - b.float()) ** 2).mean(-1)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


@register(
    "rmu",
    retain="general",
    needs_reference=True,
    defaults={"layer": 1, "steer": 20.0, "alpha": 100.0, "seed": 0},
)
def rmu(model, batches, ref=None, hp=None):
    """RMU: steer forget activations at one layer to a random vector, anchor retain ones."""
    f, r = batches["forget"], batches["retain"]
    h_f = _hidden(model, f, hp["layer"])
    u = _direction(h_f.size(-1), hp["seed"], h_f.device)
    forget_term = _masked_mse(h_f, hp["steer"] * u, f["attention_mask"])
    h_r = _hidden(model, r, hp["layer"])
    with torch.no_grad():
        h_ref = _hidden(ref, r, hp["layer"])
    return forget_term + hp["alpha"] * _masked_mse(h_r, h_ref, r["attention_mask"])
