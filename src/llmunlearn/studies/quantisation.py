"""The quantisation attack: is forgotten knowledge gone, or only hidden from fp32?

Zhang et al. (2024) report that quantising an unlearned model to 4 bits brings back much of
what unlearning removed: the updates of unlearning are small, and rounding the weights to a
coarse grid can undo them. This module rounds a model's weights the way llama.cpp ships
models, with the ``gguf`` package's own quantisers (round-to-nearest per block of 32
weights along a row): **4 bits** is ``Q4_1`` (a scale and a minimum per block, fp16), the
scheme of the SmolLM2 file this book reads; **8 bits** is ``Q8_0`` (a scale per block). Every
2-D weight is quantised (the attention and MLP projections and the token embedding, which
the output layer shares); the 1-D norm weights stay fp32, as in llama.cpp's files.

Quantising a model that is already on a grid of the same scheme changes nothing
(:func:`quantised` is idempotent). But each block's scale (and Q4_1's minimum) comes from
that block's own weights, so an update moves the grid with it: re-quantising an unlearned
copy of a model that came quantised does not simply snap it back onto the original's
weights; whether it brings the forgotten text back is what :func:`quantisation_attack`
measures.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from ..evaluation import evaluation_config, evaluation_row, evaluation_sets, load_folder
from ..models import load_model
from ..progress import progress_bar as tqdm
from ..runs import Run
from ..unlearning.runner import measured_models

SCHEMES = {4: "Q4_1", 8: "Q8_0"}
"""Bit width -> the GGML quantisation type that rounds to it."""

BLOCK = 32
"""Weights per quantisation block (along a row), as in every GGML type used here."""


def quantised_tensors(model) -> list[str]:
    """The names of the parameters :func:`quantised` rounds: every 2-D weight."""
    return [name for name, p in model.named_parameters() if p.ndim == 2]


def check_quantisable(model, bits: int) -> None:
    """A ``ValueError`` naming the value if ``bits`` is not one of :data:`SCHEMES` or a
    tensor's rows do not divide into blocks of :data:`BLOCK` (before anything changes)."""
    if isinstance(bits, bool) or bits not in SCHEMES:
        raise ValueError(f"bits must be one of {sorted(SCHEMES)}, got {bits!r}")
    for name, p in model.named_parameters():
        if p.ndim == 2 and p.shape[-1] % BLOCK:
            raise ValueError(
                f"tensor {name} has rows of {p.shape[-1]} weights, which do not divide "
                f"into blocks of {BLOCK}"
            )


@torch.no_grad()
def quantised(model, bits: int, copy_model: bool = True):
    """A copy of ``model`` whose 2-D weights are quantised to ``bits`` (see the module
    doc) and stored back dequantised in fp32, so that every metric reads it as it reads
    any model. The model itself is left as it was (``copy_model=False``: rounded in
    place, for a model loaded only to be measured once more)."""

    check_quantisable(model, bits)
    qtype = GGMLQuantizationType[SCHEMES[bits]]
    out = copy.deepcopy(model) if copy_model else model
    seen = {}
    for name, p in out.named_parameters():
        if p.ndim != 2:
            continue
        if p.data_ptr() in seen:  # a tied weight (embedding and output layer): once
            continue
        w = p.detach().cpu().float().numpy()
        q = np.asarray(dequantize(quantize(w, qtype), qtype), dtype=np.float32)
        p.copy_(torch.from_numpy(q).to(p.device, p.dtype))
        seen[p.data_ptr()] = name
    return out


def same_weights(model, base) -> float:
    """The share of :func:`quantised_tensors`' weights of ``model`` equal to ``base``'s
    (two models of one architecture): 1 when a model is back on its base's grid."""
    same = total = 0
    theirs = dict(base.named_parameters())
    for name in quantised_tensors(model):
        a, b = dict(model.named_parameters())[name], theirs[name]
        same += int((a == b).sum())
        total += a.numel()
    return same / total


SPLITS = ("forget", "approximate", "retain", "general")
"""The evaluation sets a quantised model can be read on."""

READ = ("forget", "approximate", "retain")
"""The sets a quantised model is read on by default: what it knows of the forget set,
against unseen text of the domain and the domain's retained text."""


def _checked(bits, splits) -> tuple[tuple, tuple]:
    """``(bits, splits)`` as tuples if every width is one of :data:`SCHEMES` and the
    splits include forget and are known, else a ``ValueError`` naming the value."""
    bits = tuple(bits)
    for b in bits:
        if isinstance(b, bool) or b not in SCHEMES:
            raise ValueError(f"bits must be one of {sorted(SCHEMES)}, got {b!r}")
    splits = tuple(splits)
    if "forget" not in splits or set(splits) - set(SPLITS):
        raise ValueError(
            f"splits must include 'forget' and be among {', '.join(SPLITS)}; got {splits!r}"
        )
    return bits, splits


def _measured(profile, domain, folder, known, bits, splits, reference) -> dict:
    """One model's summary: its fp32 row (``known``, measured by its run) and its row at
    each width, the perplexities of ``splits``, the AUCs and, with ``reference`` (the base
    model), the share of weights back on the base's."""
    model, _, chunks, general = load_folder(profile, domain, folder)
    check_quantisable(model, bits[0])  # every width checked before any is measured
    sets = evaluation_sets(profile.unlearning, profile.seed, chunks, general)
    sets = {k: v for k, v in sets.items() if k in splits}
    found = {32: dict(known)}
    if reference is not None:
        found[32]["same_as_base"] = same_weights(model, reference)
    for i, b in enumerate(bits):  # the last width rounds the loaded model itself
        q = quantised(model, b, copy_model=i < len(bits) - 1).eval()
        found[b] = evaluation_row(q, sets, profile.seed)
        if reference is not None:
            found[b]["same_as_base"] = same_weights(q, reference)
    return {
        str(b): {
            k: v
            for k, v in r.items()
            if k.startswith(("ppl_", "auc", "same_as_base"))
            and (not k.startswith("ppl_") or k[4:] in splits)
        }
        for b, r in found.items()
    }


def quantisation_attack(
    profile,
    domain: str,
    zoo: dict | None = None,
    methods=None,
    bits=(8, 4),
    splits=READ,
    base=None,
    progress=True,
):
    """Every model a domain compares (the original, the exact retrained model, each
    method's selected model; :func:`~llmunlearn.unlearning.runner.domain_models`) quantised to
    each of ``bits`` and evaluated on the runs' evaluation sets (``splits`` of them,
    default :data:`READ`; cached per model), beside the fp32 row its run already measured
    on the same sets. A ``DataFrame``, one row per (model, bits; 32 = fp32): perplexities,
    the Min-K% AUC, and
    ``undone``: the share of the model's fp32 change of log forget perplexity from the
    original's that quantisation takes back (1: the original's again, 0: quantisation
    changes nothing, NaN for the original itself). With ``base`` (a folder: the model the
    zoo started from, for a model that came quantised), ``same_as_base``: the share of
    weights that quantisation puts back exactly on ``base``'s (:func:`same_weights`)."""

    bits, splits = _checked(bits, splits)
    # each model with the row its run already measured on these sets: its fp32 numbers
    models = measured_models(profile, domain, zoo, methods, progress=False)
    base_model = functools.cache(lambda: load_model(base)[0])  # loaded once, if needed
    rows = []
    for name, (folder, known) in tqdm(
        models.items(), desc=f"quantising {domain}", disable=not progress
    ):
        run = Run.create(
            "quantise",
            f"{profile.name}-{domain}-{name}",
            {
                "evaluation": evaluation_config(profile),
                "domain": domain,
                "model": str(folder.resolve().relative_to(folder.resolve().parents[1])),
                "bits": list(bits),
                "splits": list(splits),
                **({"base": Path(base).name} if base is not None else {}),
            },
        )
        if not run.done:
            reference = base_model() if base is not None else None
            run.finish(_measured(profile, domain, folder, known, bits, splits, reference))
        for b, r in run.summary.items():
            rows.append({"domain": domain, "model": name, "bits": int(b), **r})
    frame = pd.DataFrame(rows)
    fp32 = frame[frame["bits"] == 32].set_index("model")["ppl_forget"]
    original = fp32.get("original", math.nan)

    def undone(r):
        moved = math.log(fp32[r["model"]] / original)
        if r["model"] == "original" or abs(moved) < 1e-12:
            return math.nan
        return math.log(fp32[r["model"]] / r["ppl_forget"]) / moved

    frame["undone"] = frame.apply(undone, axis=1)
    return frame
