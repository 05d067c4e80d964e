"""The quantisation attack's rounding: llama.cpp's own schemes, a copy left whole, a grid
that snaps small updates back, and every model of a domain measured at each width."""

import math

import pytest
import torch

import llmunlearn as ul
from llmunlearn.models import build_model
from llmunlearn.studies.quantisation import BLOCK, quantised, quantised_tensors


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_quantising_rounds_the_2d_weights_of_a_copy_within_half_a_step(tiny):
    model = build_model(tiny.model, 64, seed=0)
    before = _weights(model)
    q = quantised(model, 4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # untouched
    after = _weights(q)
    for name in quantised_tensors(model):
        w, r = before[name], after[name]
        blocks = w.reshape(-1, BLOCK)
        step = (blocks.max(1).values - blocks.min(1).values) / 15  # Q4_1: 16 levels a block
        err = (r - w).reshape(-1, BLOCK).abs().max(1).values
        assert (err <= step / 2 * 1.01 + 1e-3).all(), name  # fp16 scale and minimum
        assert len(torch.unique(r.reshape(-1, BLOCK)[0])) <= 16
    for name, p in model.named_parameters():
        if p.ndim == 1:
            assert torch.equal(after[name], before[name])  # norms stay fp32


@pytest.mark.parametrize("bits", [4, 8])
def test_requantising_is_idempotent_but_an_update_moves_the_grid(tiny, bits):
    """A quantised model quantised again is the same model. But each block's scale (and
    Q4_1's minimum) comes from the block's own weights, so an update far below a step
    moves the grid with it: re-quantising an unlearned copy of a model that came quantised
    does not simply snap it back onto the original's weights."""
    q = quantised(build_model(tiny.model, 64, seed=0), bits)
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(quantised(q, bits)).values(), _weights(q).values())
    )
    nudged = quantised(q, bits)
    with torch.no_grad():
        for p in nudged.parameters():
            if p.ndim == 2:
                p.add_(1e-5 * torch.randn_like(p))  # far below any step
    snapped = _weights(quantised(nudged, bits))
    moved = [float((snapped[n] - w).abs().max()) for n, w in _weights(q).items()]
    assert max(moved) > 0  # not back on the original's grid
    # it lands near the update, of its order (fp16 scales), far from a grid step away
    assert max(moved) < 1e-4


def test_a_bad_width_or_block_is_named_before_anything_changes(tiny):
    model = build_model(tiny.model, 64, seed=0)
    with pytest.raises(ValueError, match=r"bits must be one of \[4, 8\], got 3"):
        quantised(model, 3)
    odd = build_model(ul.get_profile("smoke", d_model=48, n_head=2), 64, seed=0)
    with pytest.raises(ValueError, match="rows of 48 weights, which do not divide into blocks"):
        quantised(odd, 4)


def test_every_model_of_a_domain_is_measured_at_each_width(tiny):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    frame = ul.quantisation_attack(tiny, "books", zoo, methods=["ga"], bits=(8, 4), progress=False)
    assert set(frame["model"]) == {"original", "retrained", "ga"}
    assert sorted(set(frame["bits"])) == [4, 8, 32]
    by = frame.set_index(["model", "bits"])
    assert math.isnan(by.loc[("original", 4), "undone"])
    # 8 bits barely moves a model, 4 bits more
    for m in ("original", "retrained", "ga"):
        d8 = abs(math.log(by.loc[(m, 8), "ppl_forget"] / by.loc[(m, 32), "ppl_forget"]))
        d4 = abs(math.log(by.loc[(m, 4), "ppl_forget"] / by.loc[(m, 32), "ppl_forget"]))
        assert d8 < 0.01 and d8 <= d4, m
    again = ul.quantisation_attack(tiny, "books", zoo, methods=["ga"], bits=(8, 4), progress=False)
    assert again.equals(frame)  # cached


def test_the_share_back_on_a_base_model_and_the_sets_read(tiny, tmp_path):
    """``same_weights`` is 1 for a model on its base's grid and falls when an update moves
    the grid; the attack reads only the sets asked for and reports that share against a
    base folder."""
    from llmunlearn.studies.quantisation import same_weights

    q = quantised(build_model(tiny.model, 64, seed=0), 4)
    assert same_weights(quantised(q, 4), q) == 1.0
    nudged = quantised(q, 4)
    with torch.no_grad():
        for p in nudged.parameters():
            if p.ndim == 2:
                p.add_(1e-5 * torch.randn_like(p))
    assert same_weights(quantised(nudged, 4), q) < 1.0

    zoo = ul.pretrain_zoo(tiny, progress=False)
    base = zoo["original"].path / "model"
    frame = ul.quantisation_attack(
        tiny,
        "books",
        zoo,
        methods=["ga"],
        bits=(4,),
        splits=("forget", "approximate"),
        base=base,
        progress=False,
    )
    by = frame.set_index(["model", "bits"])
    assert by.loc[("original", 32), "same_as_base"] == 1.0  # the base itself
    assert by.loc[("ga", 32), "same_as_base"] < 1.0  # unlearning moved it
    assert "ppl_retain" not in frame.columns and "ppl_general" not in frame.columns
    assert {"ppl_forget", "ppl_approximate", "auc"} <= set(frame.columns)
    with pytest.raises(ValueError, match="splits must include 'forget'"):
        ul.quantisation_attack(tiny, "books", zoo, methods=["ga"], splits=("retain",))
