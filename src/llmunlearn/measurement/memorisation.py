"""Verbatim memorisation: greedy continuation of a forget chunk's first ``prefix`` tokens
against its true next ``suffix`` tokens, scored by the length of the exactly matching start
(:func:`exact_match_length`; lower is better after unlearning) and token ROUGE-L F1
(:func:`rouge_l_f1`). Each returns its aggregate and its per-example values."""

from __future__ import annotations

import numpy as np
import torch

from ..config import TENSOR_COLUMNS
from ..core import evaluated


def rouge_l_f1(candidate: list, reference: list) -> float:
    """Token-level ROUGE-L F1 (longest common subsequence). Written here because the
    ``rouge-score`` package splits English words and would mangle source code."""
    if not candidate or not reference:
        return 0.0
    prev = [0] * (len(reference) + 1)
    for c in candidate:
        cur = [0]
        for j, r in enumerate(reference):
            cur.append(prev[j] + 1 if c == r else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(candidate), lcs / len(reference)
    return 2 * p * r / (p + r)


def exact_match_length(candidate: list, reference: list) -> int:
    """How many leading tokens of ``candidate`` equal ``reference``'s."""
    n = 0
    for c, r in zip(candidate, reference):
        if c != r:
            break
        n += 1
    return n


@evaluated
def verbatim_memorisation(model, chunks, prefix: int, suffix: int, limit: int = 64) -> dict:
    """Greedy continuation of forget-chunk prefixes against the true suffix (chunks with
    at least ``prefix + suffix`` real tokens, at most ``limit`` of them). Where no chunk is
    that long (short documents), it is not measured: NaN scores with ``n`` 0 and a
    ``note`` saying why, so that the rest of an evaluation stands."""
    ds = chunks.with_format("torch", columns=TENSOR_COLUMNS)
    rows = [r for r in ds if int(r["attention_mask"].sum()) >= prefix + suffix][:limit]
    if not rows:
        return {
            "exact_match_tokens": float("nan"),
            "rouge_l": float("nan"),
            "n": 0,
            "prefix": prefix,
            "suffix": suffix,
            "note": f"not measured: no forget chunk has {prefix} + {suffix} real tokens",
        }
    device = next(model.parameters()).device
    ids = torch.stack([r["input_ids"][:prefix] for r in rows]).to(device)
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=suffix,
        min_new_tokens=suffix,
        do_sample=False,
        pad_token_id=model.config.pad_token_id,
    )
    gen = out[:, prefix:].tolist()
    true = [r["input_ids"][prefix : prefix + suffix].tolist() for r in rows]
    em = [exact_match_length(g, t) for g, t in zip(gen, true)]
    rl = [rouge_l_f1(g, t) for g, t in zip(gen, true)]
    return {
        "exact_match_tokens": float(np.mean(em)),
        "rouge_l": float(np.mean(rl)),
        "n": len(rows),
        "prefix": prefix,
        "suffix": suffix,
    }
