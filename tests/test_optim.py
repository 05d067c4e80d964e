import pytest
import torch

import llmunlearn as ul
from llmunlearn.training.optim import SophiaG


def test_sophia_update_is_the_clipped_ratio_of_momentum_to_hessian():
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0, 1.0]))
    opt = SophiaG([p], lr=0.1, betas=(0.0, 0.0), rho=1.0)
    opt.tokens_per_step = 2
    p.grad = torch.tensor([4.0, 0.5, -0.1])
    opt.update_hessian()  # beta2 = 0: hessian = grad^2 = [16, 0.25, 0.01]
    p.grad = torch.tensor([4.0, 0.5, -0.1])
    opt.step()
    # ratio = |m| / (rho * B * h) = [4/32, 0.5/0.5, 0.1/0.02] clipped at 1
    expected = 1.0 - 0.1 * torch.tensor([1.0, 1.0, -1.0]) * torch.tensor([0.125, 1.0, 1.0])
    torch.testing.assert_close(p.detach(), expected)


def test_sophia_runs_in_the_runner_and_changes_the_run(tiny):
    adam = ul.unlearn(tiny, "github", "ga", steps=3, progress=False)
    sophia = ul.unlearn(tiny, "github", "ga", steps=3, optimizer="sophia", progress=False)
    assert sophia.path != adam.path and sophia.summary["status"] == "finished"
    assert sophia.summary["evals"][-1]["ppl_forget"] != adam.summary["evals"][-1]["ppl_forget"]


def test_unknown_optimizer_is_named(tiny):
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; valid: adamw, sophia"):
        ul.unlearn(tiny, "github", "ga", optimizer="lion", progress=False)
