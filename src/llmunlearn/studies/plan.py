"""What a profile's book will cost, before anything runs (``llmunlearn plan``).

Every figure is an estimate from the profile's sizes, by stated rules:

- tokens: characters / :func:`chars_per_token` of the profile's vocabulary (the book's
  byte-level BPE on mixed prose and code, measured at three vocabulary sizes); an
  unlearning step trains ``batch`` chunks of ``chunk_len`` tokens per stream (two streams
  for the regularised methods);
- FLOPs: 6 N per trained token, 2 N per token only read (evaluation, a frozen reference);
  N counted on the meta device from the profile's model (no memory, no weights);
- peak memory of a training process: fp32 weights, gradients and AdamW's two moments
  (16 bytes a parameter), a frozen reference in the compute dtype, activations of one
  micro-batch (:data:`ACTIVATION_BYTES` bytes per token, hidden unit and layer) and its
  logits with their gradient in fp32;
- time: FLOPs / (the device's dense peak x ``utilisation``), the utilisation stated with
  the plan (small models reach a small share of a GPU's peak).

Not counted: data fetching, the tokenizer, the real-LLM chapter (SmolLM2 on its own
sets), lm-evaluation-harness, relearning and quantisation (each a small share of the grid),
process start-up and model loading.

:func:`measured` holds a plan against the finished runs of the same profile in the home
(``llmunlearn plan --measured``): the runs, trained tokens and hours they took, and the
utilisation they reached, so that a first book (or ``make gpu-check``) on a machine tells
how far the plan was off there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..config import DOMAINS, Profile
from ..models import build_model, n_params
from ..runs import home, read_json
from ..unlearning.methods import get_method
from .robustness import grid_cells

CHARS_PER_TOKEN = {1024: 2.23, 4096: 3.03, 16_384: 3.71}
"""Characters per token of the book's byte-level BPE by vocabulary size, measured on D
minus every forget set at ``8a8700b`` (``smoke``: 108k characters, 48k tokens; ``cpu``:
382k, 126k; ``gpu``: 4.61M, 1.24M). Between these sizes the plan interpolates in the
logarithm of the vocabulary; beyond them it takes the nearest one (for a 64k vocabulary it
then counts more tokens than there will be). The figure before, 4.3 for every profile,
was no measurement of these tokenizers: the ``cpu`` book trained 1.4x the pre-training
tokens it planned."""

ACTIVATION_BYTES = 34
"""Bytes of activations kept per token, hidden unit and layer for the backward pass in
16-bit compute without recomputation (Korthikanti et al. 2022's estimate)."""

DEVICES = {
    "H100": 989e12,  # bf16 dense, SXM
    "H200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "cpu-2core": 0.15e12,  # fp32 AVX2 FMA, measured on this project's machines
}
"""Dense peak FLOP/s per device (bf16 on GPUs, fp32 on the CPU)."""


def _n_params(profile: Profile) -> int:
    with torch.device("meta"):
        return n_params(build_model(profile.model, profile.vocab_size, 0))


def chars_per_token(vocab_size: int) -> float:
    """:data:`CHARS_PER_TOKEN` at ``vocab_size`` (interpolated in its logarithm)."""
    sizes = sorted(CHARS_PER_TOKEN)
    return float(
        np.interp(np.log2(vocab_size), np.log2(sizes), [CHARS_PER_TOKEN[v] for v in sizes])
    )


def _tokens(profile: Profile, chars: float) -> float:
    return chars / chars_per_token(profile.vocab_size)


def plan(profile: Profile, device: str = "H100", utilisation: float = 0.3) -> pd.DataFrame:
    """One row per stage of the profile's book: ``runs``, ``tokens`` (trained and read),
    ``trained tokens``, ``FLOPs``, ``peak memory GB`` (one process) and ``hours`` on ``device`` at
    ``utilisation`` of its peak, and a ``book`` row with the sums (memory: the largest).
    A device not in :data:`DEVICES` or a utilisation outside (0, 1] is a ``ValueError``."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
    if isinstance(utilisation, bool) or not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must lie in (0, 1], got {utilisation!r}")
    n = _n_params(profile)
    stages = [] if profile.base_model else _pretraining_stages(profile)
    if profile.grid_lrs:
        stages.append(_grid_stage(profile))
    rows = []
    for s in stages:
        flops = 6 * n * s["trained"] + 2 * n * s["read"]
        rows.append(
            {
                "stage": s["stage"],
                "runs": s["runs"],
                "tokens": s["trained"] + s["read"],
                "trained tokens": s["trained"],
                "FLOPs": flops,
                "peak memory GB": _memory(profile, n, s["batch"], s["reference"]) / 1e9,
                "hours": flops / (DEVICES[device] * utilisation) / 3600,
            }
        )
    frame = pd.DataFrame(rows).set_index("stage")
    total = frame.sum(numeric_only=True)
    total["peak memory GB"] = frame["peak memory GB"].max()
    frame.loc["book (stages above)"] = total
    frame.attrs.update({"device": device, "utilisation": utilisation, "n_params": n})
    return frame


def _memory(profile: Profile, n: int, batch: int, reference: bool) -> float:
    """Peak bytes of one training process (see the module's rules)."""
    states = 16 * n + (2 * n if reference else 0)
    tokens = batch * profile.chunk_len
    act = tokens * profile.d_model * profile.n_layer * ACTIVATION_BYTES
    logits = 2 * tokens * profile.vocab_size * 4
    return states + act + logits


def _stage(stage: str, runs: int, trained: float, read: float, batch: int, reference: bool):
    return {
        "stage": stage,
        "runs": runs,
        "trained": trained,
        "read": read,
        "batch": batch,
        "reference": reference,
    }


def _pretraining_stages(profile: Profile) -> list[dict]:
    """The bases (D minus every forget set, per replicate seed), the final slices (every
    seed's original and exact retrained models, the referee's siblings) and the dose
    pilot's other doses: trained tokens only."""
    seeds = len(profile.grid_seeds)
    # both designs' forget sets
    forget_all = _tokens(profile, profile.forget_chars) * len(DOMAINS) * 2
    d_rest = _tokens(profile, profile.retain_chars * len(DOMAINS) + profile.general_retain_chars)
    late = profile.pretrain_order == "late"
    per_seed = 1 + len(DOMAINS) * len(profile.retrained_designs)
    slices = seeds * per_seed + (len(DOMAINS) if late else 0)  # and the referee's siblings
    pilot = [k for k in profile.pilot_doses if k != profile.forget_repeats]
    per_dose = 1 + len(DOMAINS) * (2 if late else 1)  # original, retrained, siblings: at most
    batch = profile.pretrain_batch
    return [
        _stage(
            "pre-training: bases", seeds, seeds * profile.pretrain_epochs * d_rest, 0, batch, False
        ),
        _stage(
            "pre-training: final slices (zoo, replicates, siblings)",
            slices,
            slices * 2 * profile.forget_repeats * forget_all,
            0,
            batch,
            False,
        ),
        _stage(
            "pre-training: the dose pilot's other doses",
            len(pilot) * per_dose,
            sum(per_dose * 2 * k * forget_all for k in pilot),
            0,
            batch,
            False,
        ),
    ]


def _grid_stage(profile: Profile) -> dict:
    """Every grid cell on every domain: its trained tokens (two streams for the
    regularised methods), the frozen reference's reads and every evaluation's reads (every
    forget and approximate chunk, a sample of retain and general: ``evaluation_sets``)."""
    cells = grid_cells(profile)
    trained = read = 0.0
    evals = len(profile.grid_eval_steps) or max(1, profile.unlearn_steps // profile.eval_every)
    # passages fill 60 % of a chunk
    forget_chunks = _tokens(profile, profile.forget_chars) / profile.chunk_len / 0.6
    approximate_chunks = min(
        _tokens(profile, profile.approximate_chars) / profile.chunk_len / 0.6,
        profile.membership_chunks,
    )
    eval_tokens = (
        forget_chunks + approximate_chunks + 2 * min(profile.eval_chunks, 10**6)
    ) * profile.chunk_len
    for d in DOMAINS:
        for c in cells:
            spec = get_method(c["method"])
            per = profile.unlearn_steps * profile.batch_for(d) * profile.chunk_len
            trained += per * (2 if spec.retain else 1)
            read += (per if spec.needs_reference else 0) + evals * eval_tokens
    return _stage(
        "unlearning: the grid (every domain)",
        len(cells) * len(DOMAINS),
        trained,
        read,
        min(profile.unlearn_batch, profile.unlearn_micro_batch),
        any(get_method(c["method"]).needs_reference for c in cells),
    )


PLANNED = {
    "pre-training: bases": "pretraining bases",
    "pre-training: final slices (zoo, replicates, siblings)": "pretraining slices",
    "pre-training: the dose pilot's other doses": "pretraining slices",
    "unlearning: the grid (every domain)": "unlearning",
}
"""Which measured group of runs (:func:`measured_runs`) each planned stage is held against:
the final slices and the pilot's doses are both branches of a base and are measured as one."""


def measured_runs(profile: Profile) -> pd.DataFrame:
    """The finished runs of ``profile`` (by name) in the home, grouped as :data:`PLANNED`
    compares them: ``runs``, trained ``tokens`` (real tokens, padding left out) and
    ``hours`` of wall time (a base's, a slice's own branch, an unlearning run's whole wall
    time with its evaluations: what the book waits for)."""
    groups: dict[str, dict] = {}
    for stage in ("pretrain", "unlearn"):
        folder = home() / stage
        for run in sorted(folder.glob(f"{profile.name}-*")) if folder.exists() else ():
            if not (run / "DONE").exists():
                continue
            summary = read_json(run / "summary.json")
            if stage == "unlearn":
                group, key = "unlearning", ""
            elif run.name.startswith(f"{profile.name}-base-"):
                group, key = "pretraining bases", ""
            else:
                group, key = "pretraining slices", "branch_"
            if summary.get(f"{key}tokens") is None:
                continue  # trained nothing: a pre-trained LLM taken as an original
            row = groups.setdefault(group, {"runs": 0, "tokens": 0, "hours": 0.0})
            row["runs"] += 1
            row["tokens"] += summary[f"{key}tokens"]
            row["hours"] += summary[f"{key}wall_s"] / 3600
    return pd.DataFrame.from_dict(groups, orient="index")


def measured(profile: Profile, device: str = "cpu-2core", utilisation: float = 0.3):
    """:func:`plan` beside :func:`measured_runs`: per measured group, the planned and
    measured runs, trained tokens and hours, and the utilisation of ``device`` at which the
    plan's hours would have been the measured ones (``plan matches at``: ``utilisation`` x
    planned / measured hours): the figure to plan the next book at on that machine. Where
    the runs differ from the plan's (a chapter's runs beside the grid's), the hours are
    not the same work; the runs' columns show it. A profile with no finished runs in the
    home is a ``ValueError``."""
    done = measured_runs(profile)
    if done.empty:
        raise ValueError(
            f"no finished pre-training or unlearning run of profile {profile.name!r} in "
            f"{home()}: run its book (or its chapters) first"
        )
    planned = plan(profile, device, utilisation)
    rows = {}
    for stage, group in PLANNED.items():
        if stage not in planned.index or group not in done.index:
            continue
        row = rows.setdefault(
            group, {"planned runs": 0, "planned tokens": 0.0, "planned hours": 0.0}
        )
        row["planned runs"] += planned.loc[stage, "runs"]
        row["planned tokens"] += planned.loc[stage, "trained tokens"]
        row["planned hours"] += planned.loc[stage, "hours"]
    frame = pd.DataFrame.from_dict(rows, orient="index").join(done, how="outer")
    frame = frame.rename(columns={c: f"measured {c}" for c in done.columns})
    # the utilisation at which the plan's hours are the measured ones: the one to plan at
    frame["plan matches at"] = utilisation * frame["planned hours"] / frame["measured hours"]
    frame.attrs.update(planned.attrs)
    return frame
