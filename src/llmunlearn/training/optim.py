"""Sophia (Liu et al. 2023), the second-order optimiser SOUL (Jia et al. 2024) found
better than Adam for unlearning.

Written here rather than taken from a library: ``pytorch-optimizer`` ships only the
Hutchinson variant (SophiaH, which needs a double backward through the model), and the
official SophiaG code on PyPI (``sophia-opt``) is an unmaintained single-file copy. This is
SophiaG: an EMA of gradients, divided by an EMA of the diagonal Gauss-Newton-Bartlett
Hessian estimate, clipped element-wise at 1.

The training loop calls :func:`estimate_hessian` every ``hessian_every`` steps: labels are
sampled from the model's own next-token distribution, and the squared gradient of that
loss, scaled by the tokens in the batch, estimates the Hessian diagonal.
"""

from __future__ import annotations

import torch

from ..core import IGNORE_INDEX, token_nll


class SophiaG(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr: float,
        betas=(0.965, 0.99),
        rho: float = 0.04,
        weight_decay: float = 0.0,
        eps: float = 1e-15,
    ):
        if lr <= 0:
            raise ValueError(f"Sophia's learning rate must be positive, got {lr}")
        super().__init__(
            params, dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay, eps=eps)
        )
        self.tokens_per_step = 1  # B in the paper: set by the loop before each step

    def _state(self, p):
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
            state["hessian"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def update_hessian(self):
        """Fold the current gradients (of the sampled-label loss) into the Hessian EMA."""
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for p in group["params"]:
                if p.grad is not None:
                    self._state(p)["hessian"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1 = group["betas"][0]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                denom = (group["rho"] * self.tokens_per_step * state["hessian"]).clamp_min(
                    group["eps"]
                )
                ratio = (state["exp_avg"].abs() / denom).clamp(max=1.0)
                p.addcmul_(state["exp_avg"].sign(), ratio, value=-group["lr"])
        return loss


def estimate_hessian(model, batches: list[dict], optimizer: SophiaG) -> int:
    """One Gauss-Newton-Bartlett estimate over every batch of the step's streams (the
    same tokens as SophiaG's batch-size term B): sample next tokens from the model,
    back-propagate their mean NLL over all those tokens, and fold the squared gradients
    into ``optimizer``'s Hessian EMA. Returns the number of tokens the estimate covered."""
    if isinstance(batches, dict):
        batches = [batches]
    scored = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
    optimizer.zero_grad()
    for batch in batches:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        with torch.no_grad():
            sampled = torch.distributions.Categorical(logits=out.logits.float()).sample()
            # sampled[t] is a draw for token t+1: shift it into label position t+1
            labels = torch.full_like(batch["labels"], IGNORE_INDEX)
            labels[:, 1:] = torch.where(
                batch["labels"][:, 1:] == IGNORE_INDEX, IGNORE_INDEX, sampled[:, :-1]
            )
        nll, mask = token_nll(out.logits, labels)
        ((nll * mask).sum() / max(scored, 1)).backward()
    optimizer.update_hessian()
    optimizer.zero_grad()
    return sum(int(b["attention_mask"].sum()) for b in batches)
