"""Profiles: one code path, four sizes.

A profile fixes every *size* of the reproduction (documents per split, model width and
depth, context length, steps). Chapters take a profile name plus a few overrides and call
:func:`get_profile`; nothing else in the library branches on the profile name.

| profile | what it is for | where |
|---|---|---|
| ``smoke`` | proves the pipeline runs; numbers are noise | CI, 2 cores, minutes |
| ``cpu``   | the reference build of the book | a laptop, 2 cores |
| ``gpu``   | a larger model and more data | one H100 |
| ``paper`` | Yi-6B and the paper's hub dataset | several GPUs, needs network |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

IGNORE_INDEX = -100
"""Label value that marks a position as not scored (right padding)."""

TENSOR_COLUMNS = ["input_ids", "attention_mask", "labels"]
"""The columns of a chunked dataset that go into the model."""

DOMAINS = ("arxiv", "github", "books")
"""The paper's three unlearning domains (the forget data come from one of them)."""

SPLITS = ("forget", "retain", "approximate")
"""Per-domain splits. forget and retain are in pre-training, approximate never is."""

GENERAL_SPLITS = ("retain", "evaluation")
"""``general/retain`` is in pre-training; ``general/evaluation`` is held out."""

DESIGNS = ("matched", "shifted")
"""How a domain's forget and approximate sets are drawn (see :mod:`llmunlearn.data`).
``matched``: both are random documents of one pool (exchangeable samples, the paper's
setting); ``shifted``: whole units against other whole units (one novel against another),
kept as the contrast. One original model has seen both designs' forget sets."""


@dataclass(frozen=True)
class Profile:
    name: str
    # --- data: characters per split and domain (whole documents; see data.py) ---------
    forget_chars: int
    retain_chars: int
    approximate_chars: int
    general_retain_chars: int  # general/retain: in pre-training, the general regulariser
    general_eval_chars: int  # general/evaluation: held out, for utility
    max_doc_chars: int  # longer documents are not selected (keeps one from dominating)
    min_doc_chars: int  # nor shorter ones (licence headers, empty __init__.py files)
    # --- tokenizer and model ------------------------------------------------------------
    vocab_size: int  # byte-level BPE trained on the pre-training data only
    chunk_len: int  # context length: documents are cut into chunks of this many tokens
    n_layer: int
    d_model: int
    n_head: int
    # --- pre-training -------------------------------------------------------------------
    pretrain_epochs: int  # passes over D = forget + retain
    pretrain_batch: int  # chunks per optimiser step
    pretrain_lr: float
    # --- unlearning (paper: AdamW, cosine, warmup 3 %, clip 1.0) ------------------------
    unlearn_lr: float
    unlearn_steps: int  # optimiser steps
    unlearn_batch: int  # forget chunks per optimiser step
    eval_every: int  # evaluate along the trajectory every this many steps
    eval_chunks: int  # chunks per split evaluated along the trajectory (a fixed sample)
    # --- execution ----------------------------------------------------------------------
    threads: int  # torch CPU threads in all (never more than the machine's cores)
    seed: int = 42  # the official code's seed
    dataset: str = "local"  # "local" (our sources) or a hub id / folder of the paper's data
    design: str = "matched"  # split design of forget / approximate: see DESIGNS
    jobs: int = 1  # independent runs in parallel processes, threads // jobs threads each
    unlearn_micro_batch: int = 8  # chunks per forward pass and process (rest: accumulation)
    # a pre-trained LLM (hub id or folder) serving as the original model: nothing is
    # pre-trained, and there is no exact retrained model (the paper's setting)
    base_model: str | None = None
    # chunks per optimiser step for some domains, overriding unlearn_batch (the paper's
    # runs: 8 GPUs x 1 chunk x accumulation 60 on arXiv, 85 on GitHub)
    unlearn_batch_per_domain: tuple[tuple[str, int], ...] | None = None
    # unlearning length in passes over the forget set (the paper: one epoch); when set
    # it replaces unlearn_steps by epochs x forget chunks // batch
    unlearn_epochs: float | None = None
    # recompute activations in the backward pass (memory for time: a 6B model's
    # activations at 4k context do not fit beside its weights and optimiser states)
    gradient_checkpointing: bool | None = None
    # --- the hyper-parameter grid (robustness chapter; see llmunlearn.grid) -------------
    # every method x learning rate is one run evaluated every eval_every steps (the steps
    # axis), at the first seed; the methods named in grid_seed_methods (None: all) also
    # at the other seeds, and those in grid_sophia_methods also with SophiaG (first seed)
    grid_lrs: tuple[float, ...] = ()
    grid_seeds: tuple[int, ...] = (42, 43)
    grid_seed_methods: tuple[str, ...] | None = None
    grid_sophia_methods: tuple[str, ...] = ("ga", "ga_gd_in")

    def batch_for(self, domain: str) -> int:
        """Forget chunks per unlearning step on ``domain``."""
        return dict(self.unlearn_batch_per_domain or ()).get(domain, self.unlearn_batch)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            forget_chars=12_000,
            retain_chars=24_000,
            approximate_chars=12_000,
            general_retain_chars=24_000,
            general_eval_chars=12_000,
            max_doc_chars=16_000,
            min_doc_chars=300,
            vocab_size=1024,
            chunk_len=64,
            n_layer=2,
            d_model=64,
            n_head=2,
            pretrain_epochs=3,
            pretrain_batch=8,
            pretrain_lr=3e-3,
            unlearn_lr=1e-3,
            unlearn_steps=6,
            unlearn_batch=4,
            eval_every=2,
            eval_chunks=32,
            threads=2,
            grid_lrs=(1e-3, 1e-2),
            grid_seed_methods=("ga",),
            grid_sophia_methods=("ga",),
        ),
        Profile(
            # sizes chosen for the 60-minute budget on 2 cores with the grid (180 runs)
            name="cpu",
            forget_chars=40_000,
            retain_chars=80_000,
            approximate_chars=40_000,
            general_retain_chars=80_000,
            general_eval_chars=40_000,
            max_doc_chars=12_000,
            min_doc_chars=500,
            vocab_size=4096,
            chunk_len=128,
            n_layer=4,
            d_model=192,
            n_head=4,
            pretrain_epochs=3,
            pretrain_batch=16,
            pretrain_lr=2e-3,
            # 20 steps x 4 chunks: about one pass over a forget set (the paper's epoch)
            unlearn_lr=2e-4,
            unlearn_steps=20,
            unlearn_batch=4,
            eval_every=10,
            eval_chunks=32,
            threads=2,
            # 2e-4 x 10^(k/2), k = -2..1: from barely moving the forget set to breaking
            # the model (measured); the second seed for the paper's claim (GA, GA+GD in)
            grid_lrs=(2e-5, 6.3e-5, 2e-4, 6.3e-4),
            grid_seed_methods=("ga", "ga_gd_in"),
        ),
        Profile(
            name="gpu",
            forget_chars=400_000,
            retain_chars=1_600_000,
            approximate_chars=400_000,
            general_retain_chars=1_600_000,
            general_eval_chars=400_000,
            max_doc_chars=40_000,
            min_doc_chars=500,
            vocab_size=16_384,
            chunk_len=512,
            n_layer=8,
            d_model=512,
            n_head=8,
            pretrain_epochs=10,
            pretrain_batch=32,
            pretrain_lr=1e-3,
            unlearn_lr=1e-4,
            unlearn_steps=60,
            unlearn_batch=16,
            eval_every=5,
            eval_chunks=512,
            threads=8,
            grid_lrs=(1e-5, 3.2e-5, 1e-4, 3.2e-4, 1e-3),
            grid_seeds=(42, 43, 44),
        ),
        Profile(
            # The paper's setting: Yi-6B as the original model (pre-training fields unused)
            # on its hub dataset, 4k context, one epoch at 8 GPUs x 1 chunk x accumulation
            # 60 (arXiv) or 85 (GitHub) = 480 / 680 chunks per optimiser step.
            name="paper",
            forget_chars=0,
            retain_chars=0,
            approximate_chars=0,
            general_retain_chars=0,
            general_eval_chars=0,
            max_doc_chars=10**9,
            min_doc_chars=0,
            vocab_size=64_000,
            chunk_len=4096,
            n_layer=32,
            d_model=4096,
            n_head=32,
            pretrain_epochs=0,
            pretrain_batch=1,
            pretrain_lr=0.0,
            unlearn_lr=2e-5,
            unlearn_steps=8,
            unlearn_batch=480,
            eval_every=1,
            eval_chunks=10**9,
            threads=8,
            dataset="llmunlearn/unlearn_dataset",
            base_model="01-ai/Yi-6B",
            unlearn_batch_per_domain=(("arxiv", 480), ("github", 680)),
            unlearn_epochs=1.0,
            unlearn_micro_batch=1,
            gradient_checkpointing=True,
            grid_lrs=(5e-6, 1e-5, 2e-5, 5e-5),
            grid_seeds=(42,),
            grid_seed_methods=("ga", "ga_gd_in"),
        ),
    )
}


def get_profile(name: str, **overrides) -> Profile:
    """Return profile ``name`` with ``overrides`` applied (``None`` values are ignored).

    Raises ``ValueError`` naming the bad profile or field and listing the valid ones.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(Profile)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {sorted(fields)}")
    profile = dataclasses.replace(PROFILES[name], **overrides)
    check_profile(profile)
    return profile


POSITIVE_INT_FIELDS = (
    "vocab_size",
    "chunk_len",
    "n_layer",
    "d_model",
    "n_head",
    "pretrain_batch",
    "unlearn_steps",
    "unlearn_batch",
    "eval_every",
    "eval_chunks",
    "threads",
    "jobs",
    "unlearn_micro_batch",
)
NON_NEGATIVE_INT_FIELDS = (
    "forget_chars",
    "retain_chars",
    "approximate_chars",
    "general_retain_chars",
    "general_eval_chars",
    "max_doc_chars",
    "min_doc_chars",
    "pretrain_epochs",
    "seed",
)


def check_profile(profile: Profile) -> Profile:
    """``profile`` if every field holds an allowed value, else a ``ValueError`` naming the
    field, the value and what is allowed."""
    check_choice("design", profile.design, DESIGNS)
    for field in POSITIVE_INT_FIELDS + NON_NEGATIVE_INT_FIELDS:
        check_int(field, getattr(profile, field), int(field in POSITIVE_INT_FIELDS))
    check_positive("unlearn_lr", profile.unlearn_lr)
    if not profile.base_model:
        check_positive("pretrain_lr", profile.pretrain_lr)
    if profile.d_model % profile.n_head:
        raise ValueError(
            f"d_model ({profile.d_model}) must be a multiple of n_head ({profile.n_head})"
        )
    if profile.unlearn_epochs is not None:
        check_positive("unlearn_epochs", profile.unlearn_epochs)
    check_grid(profile)
    return profile


def check_grid(profile: Profile) -> Profile:
    """``profile`` if its grid is valid (see :mod:`llmunlearn.grid`), else a ``ValueError``
    naming the field and the value: at least one learning rate, each positive and finite,
    no learning rate or seed twice, seeds non-negative integers, known method names."""
    lrs, seeds = tuple(profile.grid_lrs), tuple(profile.grid_seeds)
    for lr in lrs:
        check_positive("grid_lrs entry", lr)
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"grid_lrs has a learning rate twice: {lrs!r}")
    if not seeds:
        raise ValueError("grid_seeds must name at least one seed, got ()")
    for seed in seeds:
        check_int("grid_seeds entry", seed, 0)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"grid_seeds has a seed twice: {seeds!r}")
    return profile


def check_grid_methods(profile: Profile) -> None:
    """The grid's method names are methods (needs the method registry, so it is checked
    where the grid is run, not when a profile is made)."""
    from .methods import get_method

    for m in (*(profile.grid_seed_methods or ()), *profile.grid_sophia_methods):
        get_method(m)


def check_int(name: str, value, low: int) -> int:
    """``value`` if it is an integer >= ``low``, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """``value`` if it is a finite number above 0, else a ``ValueError`` naming it."""
    import math

    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


EXECUTION_FIELDS = (
    "threads",
    "jobs",
    "grid_lrs",
    "grid_seeds",
    "grid_seed_methods",
    "grid_sophia_methods",
)
"""How runs are executed or which runs a chapter asks for, not what one run computes:
left out of run hashes."""


def profile_config(profile: Profile) -> dict:
    """The profile as it enters a run's configuration (and so its hash): every field
    except optional ones left unset (so that adding an optional field keeps earlier runs)
    and the execution fields (threads, jobs)."""
    return {
        k: v
        for k, v in dataclasses.asdict(profile).items()
        if v is not None and k not in EXECUTION_FIELDS
    }


PRETRAIN_FIELDS = (
    "forget_chars",
    "retain_chars",
    "approximate_chars",
    "general_retain_chars",
    "general_eval_chars",
    "max_doc_chars",
    "min_doc_chars",
    "vocab_size",
    "chunk_len",
    "n_layer",
    "d_model",
    "n_head",
    "pretrain_epochs",
    "pretrain_batch",
    "pretrain_lr",
    "seed",
    "dataset",
)
"""The profile fields a pre-trained model depends on: changing the unlearning budget or
the split design reuses the zoo (one original model serves both designs)."""


def pretrain_config(profile: Profile) -> dict:
    """The part of the profile that enters a pre-training run's hash."""
    return {k: getattr(profile, k) for k in PRETRAIN_FIELDS}


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a ValueError listing them."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, valid))}")
    return value
