"""Utility: four-way multiple choice on held-out general text. Given a passage's start,
pick its true continuation among three continuations of other passages by log-likelihood;
chance is 25 %, higher is better. The same items run through lm-evaluation-harness as a
local task (:mod:`llmunlearn.studies.utility`)."""

from __future__ import annotations

import random

import torch
from transformers import DynamicCache

from ..config import TENSOR_COLUMNS
from ..core import evaluated, token_nll


def multiple_choice_items(chunks, context: int, continuation: int, n_items: int, seed: int):
    """Items from held-out chunks: (context ids, [4 continuations], index of the true one)."""
    ds = chunks.with_format("torch", columns=TENSOR_COLUMNS)
    usable = [
        r["input_ids"] for r in ds if int(r["attention_mask"].sum()) >= context + continuation
    ]
    if len(usable) < 4:
        raise ValueError(
            f"need at least 4 chunks of {context + continuation} tokens for the "
            f"multiple-choice battery, found {len(usable)}"
        )
    rng = random.Random(seed)
    items = []
    for i in range(min(n_items, len(usable))):
        others = rng.sample([j for j in range(len(usable)) if j != i], 3)
        options = [usable[i][context : context + continuation]] + [
            usable[j][context : context + continuation] for j in others
        ]
        order = list(range(4))
        rng.shuffle(order)
        items.append((usable[i][:context], [options[k] for k in order], order.index(0)))
    return items


def utility_items(profile, general) -> list:
    """The utility battery of ``profile``: up to 100 items from the held-out
    ``general`` chunks, context = half a chunk, continuations of 16 tokens (fewer for
    chunks under 32 tokens). :mod:`llmunlearn.studies.utility` writes the same items as an
    lm-evaluation-harness task."""
    half = profile.chunk_len // 2
    return multiple_choice_items(
        general, context=half, continuation=min(16, half), n_items=100, seed=profile.seed
    )


@evaluated
def multiple_choice_scores(model, items, batch_size: int = 64) -> torch.Tensor:
    """Total log-likelihood of each item's continuations given its context, ``[n, 4]``.

    An item's continuations share its context, so the context is read once: a batch of
    items (same context and continuation lengths, ``batch_size`` at a time) goes through
    the model with its key-value cache kept, and each continuation is scored from that
    cache (the context's last position predicts a continuation's first token). For the
    battery that is 64 + 4 x 16 tokens per item instead of 4 x 80."""

    device = next(model.parameters()).device
    n_options = max((len(options) for _, options, _ in items), default=0)
    scores = torch.empty(len(items), n_options)
    groups: dict = {}
    for i, (ctx, options, _) in enumerate(items):
        groups.setdefault((len(ctx), tuple(len(o) for o in options)), []).append(i)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            part = members[start : start + batch_size]
            cache = DynamicCache(config=model.config)
            ctx = torch.stack([items[i][0] for i in part]).to(device)
            last = torch.log_softmax(
                model(input_ids=ctx, past_key_values=cache, use_cache=True).logits[:, -1].float(),
                -1,
            )
            for j in range(n_options):
                opt = torch.stack([items[i][1][j] for i in part]).to(device)
                first = last.gather(1, opt[:, :1]).squeeze(1)
                rest = 0.0
                if opt.size(1) > 1:
                    logits = model(input_ids=opt, past_key_values=cache, use_cache=True).logits
                    rest = -token_nll(logits, opt)[0].sum(1)
                    cache.crop(-opt.size(1))  # back to the context alone for the next option
                for i, total in zip(part, (first + rest).cpu()):
                    scores[i, j] = total
    return scores


def multiple_choice_accuracy(model, items) -> dict:
    """Share of items whose true continuation has the highest total log-likelihood."""
    picked = multiple_choice_scores(model, items).argmax(1)
    correct = sum(int(p) == answer for p, (_, _, answer) in zip(picked, items))
    return {"accuracy": correct / len(items), "chance": 0.25, "n": len(items)}
