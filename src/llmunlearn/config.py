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
import math
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
"""How a domain's forget and approximate sets are drawn (see :mod:`llmunlearn.data.corpus`).
``matched``: both are random documents of one pool (exchangeable samples, the paper's
setting); ``shifted``: whole units against other whole units (one novel against another),
kept as the contrast. One original model has seen both designs' forget sets."""


DEFAULT_DOSES = (1, 2, 4, 8)
"""The memorisation doses a pilot tries by default (``Profile.pilot_doses``)."""


# --- one frozen config per concern; a Profile is the six of them, a name and a seed ------


@dataclass(frozen=True)
class DataConfig:
    """What text each split holds: characters per split and domain (whole documents, see
    :mod:`llmunlearn.data.corpus`), the document bounds, the split design and the held-out
    share of retain."""

    forget_chars: int
    retain_chars: int
    approximate_chars: int
    general_retain_chars: int  # general/retain: in pre-training, the general regulariser
    general_eval_chars: int  # general/evaluation: held out, for utility
    max_doc_chars: int  # longer documents are not selected (keeps one from dominating)
    min_doc_chars: int  # nor shorter ones (licence headers, empty __init__.py files)
    dataset: str = "local"  # "local" (our sources) or a hub id / folder of the paper's data
    design: str = "matched"  # split design of forget / approximate: see DESIGNS
    # share of each domain's retain documents held out from the regularised methods'
    # retain stream (in pre-training, never trained on while unlearning): retain utility
    # is measured on these only (issue 22's design)
    heldout_share: float = 0.0
    # documents longer than this are cut at blank lines into passages of at most this
    # many characters, each a document of its own (None: whole documents); the length
    # bounds then apply to the passages
    passage_chars: int | None = None
    # general text's document bounds (min, max characters; whole documents, never cut);
    # None: the profile's own bounds
    general_doc_chars: tuple[int, int] | None = None


@dataclass(frozen=True)
class ModelConfig:
    """The tokenizer and the model: a byte-level BPE of ``vocab_size`` trained on the
    pre-training data only and a GPT-2 of ``n_layer`` x ``d_model``, or a pre-trained LLM
    (``base_model``) serving as the original."""

    vocab_size: int
    chunk_len: int  # context length: documents are cut into chunks of this many tokens
    n_layer: int
    d_model: int
    n_head: int
    # a pre-trained LLM (hub id or folder) serving as the original model: nothing is
    # pre-trained, and there is no exact retrained model (the paper's setting)
    base_model: str | None = None


@dataclass(frozen=True)
class PretrainConfig:
    """How the original and the exact retrained models are pre-trained."""

    pretrain_epochs: int  # passes over D = forget + retain
    pretrain_batch: int  # chunks per optimiser step
    pretrain_lr: float
    # times each forget chunk is seen per pre-training pass (fixed by the pilot of the
    # pre-training chapter, before any method runs)
    forget_repeats: int = 1
    # "mixed": forget chunks are shuffled into every pre-training epoch; "late": the
    # model is pre-trained on D minus every forget set, then a final slice holds the
    # forget sets (forget_repeats times each) and as many replayed chunks of D; each
    # exact retrained model branches from the checkpoint before that slice
    pretrain_order: str = "mixed"
    # how an exact retrained model leaves out its forget chunks: "omit" (its order is the
    # original's without them: fewer steps) or "replace" (each is replaced by a chunk
    # replayed from D minus every forget set: the same number of steps as the original)
    forget_insertion: str = "omit"


@dataclass(frozen=True)
class UnlearnConfig:
    """One unlearning run (the paper: AdamW, cosine, warm-up 3 %, clip 1.0) and what is
    evaluated along its trajectory."""

    unlearn_lr: float
    unlearn_steps: int  # optimiser steps
    unlearn_batch: int  # forget chunks per optimiser step
    eval_every: int  # evaluate along the trajectory every this many steps
    eval_chunks: int  # retain and general chunks evaluated along the trajectory (a fixed sample)
    # approximate chunks scored at every evaluated step (the membership rule's non-members):
    # every one unless a profile caps it with a fixed sample (the paper's Yi-6B runs)
    membership_chunks: int = 10**9
    unlearn_micro_batch: int = 8  # chunks per forward pass and process (rest: accumulation)
    # chunks per optimiser step for some domains, overriding unlearn_batch (the paper's
    # runs: 8 GPUs x 1 chunk x accumulation 60 on arXiv, 85 on GitHub)
    unlearn_batch_per_domain: tuple[tuple[str, int], ...] | None = None
    # unlearning length in passes over the forget set (the paper: one epoch); when set
    # it replaces unlearn_steps by epochs x forget chunks // batch
    unlearn_epochs: float | None = None
    # grid runs: a constant learning rate after warm-up, evaluated at these increasing
    # steps (empty: the chapters' schedule, every eval_every steps)
    grid_eval_steps: tuple[int, ...] = ()

    def batch_for(self, domain: str) -> int:
        """Forget chunks per unlearning step on ``domain``."""
        return dict(self.unlearn_batch_per_domain or ()).get(domain, self.unlearn_batch)


@dataclass(frozen=True)
class GridConfig:
    """Which runs the chapters ask for (never what one run computes): the hyper-parameter
    grid of the robustness chapter (:mod:`llmunlearn.studies.robustness`), the pilot's
    doses and the designs whose exact retrained models are pre-trained.

    Every method x learning rate is one run at the first seed; the methods named in
    ``grid_seed_methods`` (None: all) also at the other seeds, and those in
    ``grid_sophia_methods`` also with SophiaG (first seed)."""

    grid_lrs: tuple[float, ...] = ()
    grid_seeds: tuple[int, ...] = (42, 43)
    grid_seed_methods: tuple[str, ...] | None = None
    grid_sophia_methods: tuple[str, ...] = ("ga", "ga_gd_in")
    # methods outside the paper's seven run on the grid at the profile's learning rate only
    grid_survey_default_lr: bool = False
    # the memorisation doses the pre-training chapter's pilot tries (forget_repeats values,
    # increasing): the grid runs at the smallest one where the original is separable from
    # its exact retrained model on every domain (studies.pretraining)
    pilot_doses: tuple[int, ...] = DEFAULT_DOSES
    # the designs whose exact retrained models the book pre-trains and judges (must hold
    # "matched"; the shifted design's originals are measured either way)
    retrained_designs: tuple[str, ...] = DESIGNS


@dataclass(frozen=True)
class ExecutionConfig:
    """Where and how runs execute (:mod:`llmunlearn.training.executor`): never in a run's
    key, since none of it changes what a run computes."""

    threads: int  # torch CPU threads in all (never more than the machine's cores)
    jobs: int = 1  # independent runs in parallel processes, threads // jobs threads each
    # "local": this process (jobs > 1: worker processes); "ray": Ray tasks of `threads`
    # CPUs (and ray_gpus_per_run GPUs) on a local Ray, or on the cluster at ray_address
    executor: str = "local"
    ray_address: str | None = None
    ray_gpus_per_run: float = 0.0
    # recompute activations in the backward pass (memory for time: a 6B model's
    # activations at 4k context do not fit beside its weights and optimiser states)
    gradient_checkpointing: bool | None = None
    # torch.compile the model for its training steps (evaluation and saving use the model
    # itself): faster steps on a GPU after a compile of a minute or more; off by default
    compile: bool = False


PARTS = {
    "data": DataConfig,
    "model": ModelConfig,
    "pretraining": PretrainConfig,
    "unlearning": UnlearnConfig,
    "grid": GridConfig,
    "execution": ExecutionConfig,
}
"""A profile's parts, each a frozen config of one concern."""

OWNER = {f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)}
"""Every field of a part -> the part that holds it (no name is in two parts)."""


@dataclass(frozen=True)
class Profile:
    """Every size of the reproduction, as one frozen config per concern (:data:`PARTS`).

    A function takes the part it needs (``build_model(profile.model, ...)``); a run's key
    holds the parts that decide what it computes (:func:`pretrain_config`,
    :func:`profile_config`), never ``grid`` or ``execution``. Reading a field of a part
    through the profile (``profile.unlearn_lr``) is kept for notebooks and the command line,
    and :meth:`replace` and :func:`get_profile` take the fields by their names."""

    name: str
    data: DataConfig
    model: ModelConfig
    pretraining: PretrainConfig
    unlearning: UnlearnConfig
    grid: GridConfig
    execution: ExecutionConfig
    seed: int = 42  # the official code's seed: data splits, initialisation, streams

    def __getattr__(self, field: str):
        part = OWNER.get(field)
        if part is None:  # dunders too: pickling and copying look them up
            raise AttributeError(f"{type(self).__name__!r} has no field {field!r}")
        return getattr(object.__getattribute__(self, part), field)

    @classmethod
    def of(cls, name: str, seed: int = 42, **fields) -> Profile:
        """A profile from its fields by name (each goes to the part that holds it)."""
        unknown = sorted(set(fields) - set(OWNER))
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {field_names()}")
        parts = {p: {} for p in PARTS}
        for k, v in fields.items():
            parts[OWNER[k]][k] = v
        return cls(name, **{p: PARTS[p](**kw) for p, kw in parts.items()}, seed=seed)

    def replace(self, **fields) -> Profile:
        """This profile with ``fields`` (by name, or whole parts) replaced; an unknown name
        is a ``ValueError`` listing the valid ones."""
        top = {k: fields.pop(k) for k in ("name", "seed", *PARTS) if k in fields}
        unknown = sorted(set(fields) - set(OWNER))
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {field_names()}")
        parts = {}
        for part in PARTS:
            changed = {k: v for k, v in fields.items() if OWNER[k] == part}
            if changed:
                parts[part] = dataclasses.replace(top.get(part, getattr(self, part)), **changed)
        return dataclasses.replace(self, **{**top, **parts})

    def flat(self) -> dict:
        """Every field by name, the parts' fields in their order (for tables)."""
        out = {"name": self.name, "seed": self.seed}
        for part in PARTS:
            out.update(dataclasses.asdict(getattr(self, part)))
        return out

    def batch_for(self, domain: str) -> int:
        """Forget chunks per unlearning step on ``domain`` (:meth:`UnlearnConfig.batch_for`)."""
        return self.unlearning.batch_for(domain)


def field_names() -> list[str]:
    """Every field a profile takes by name."""
    return sorted({"name", "seed", *OWNER})


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile.of(
            name="smoke",
            forget_chars=12_000,
            retain_chars=24_000,
            approximate_chars=12_000,
            general_retain_chars=24_000,
            general_eval_chars=12_000,
            max_doc_chars=240,
            min_doc_chars=80,
            passage_chars=240,
            general_doc_chars=(300, 16_000),
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
            heldout_share=0.3,
            forget_repeats=2,
            pretrain_order="late",
            forget_insertion="replace",
            pilot_doses=(1, 2),
            grid_eval_steps=(1, 2, 4, 6),
            grid_survey_default_lr=True,
            retrained_designs=("matched",),
        ),
        Profile.of(
            # issue 22's design: each forget set about a tenth of its domain's
            # pre-training text (12k of 124k characters per design), in passages of
            # 100-320 characters (several dozen per set; one 128-token chunk each, about),
            # an approximate set three times the forget set, 30 %
            # of retain held out from the regularisers, the forget sets in a late slice of
            # pre-training (forget_repeats from the pilot); the grid at a constant rate
            # evaluated at steps 2-12, on three independently pre-trained originals
            name="cpu",
            forget_chars=12_000,
            retain_chars=100_000,
            approximate_chars=36_000,
            general_retain_chars=80_000,
            general_eval_chars=40_000,
            max_doc_chars=320,
            min_doc_chars=100,
            passage_chars=320,
            general_doc_chars=(300, 3_000),
            vocab_size=4096,
            chunk_len=128,
            n_layer=4,
            d_model=192,
            n_head=4,
            pretrain_epochs=3,
            pretrain_batch=16,
            pretrain_lr=2e-3,
            # 12 steps x 4 chunks: about four fifths of a pass over a forget set of 55-60
            # chunks, at a constant rate (the grid's), evaluated at steps 2, 5 and 12
            unlearn_lr=2e-4,
            unlearn_steps=12,
            unlearn_batch=4,
            eval_every=6,
            eval_chunks=16,
            threads=2,
            # 2e-4 x 10^(k/2), k = -1..1: from barely moving the forget set to breaking
            # the model (measured on the earlier design)
            grid_lrs=(6.3e-5, 2e-4, 6.3e-4),
            # three replicate originals: with two, the utility-cost rule's A/A
            # false-decision rate was 8.7 % (23 pairs, cpu build of 0523b4a), above 5 %
            grid_seeds=(42, 43, 44),
            grid_seed_methods=(
                "ga",
                "random_label",
                "adversarial",
                "ga_gd_in",
                "ga_kl_in",
                "ga_gd_general",
                "ga_kl_general",
                "npo",
            ),
            heldout_share=0.3,
            forget_repeats=2,
            pretrain_order="late",
            forget_insertion="replace",
            # the dose pilot: 1, 2 and 4 (its rule picks the smallest separable dose; the
            # chapter shows all three)
            pilot_doses=(1, 2, 4),
            grid_eval_steps=(2, 5, 12),
            grid_survey_default_lr=True,
            # the shifted design's exact retrained models left to gpu and paper (issue
            # 22, item 7): the budget of the book from nothing pays for the order contrast
            retrained_designs=("matched",),
            grid_sophia_methods=("ga",),
        ),
        Profile.of(
            name="gpu",
            ray_gpus_per_run=1.0,  # on Ray, each run gets a GPU of its own
            # sized to the pools the registries give (issue 36): arXiv's R vignettes
            # leave about 1.9M characters within 500-40,000 per document (measured), so
            # 2 designs x (150k + 150k) + 1.0M = 1.6M per domain; documents longer than
            # 20k characters are cut into passages at blank lines (the Wikipedia
            # sample's long articles count for general text)
            forget_chars=150_000,
            retain_chars=1_000_000,
            approximate_chars=150_000,
            general_retain_chars=1_600_000,
            general_eval_chars=400_000,
            max_doc_chars=40_000,
            min_doc_chars=500,
            passage_chars=20_000,
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
            heldout_share=0.3,
            forget_repeats=2,
            pretrain_order="late",
            forget_insertion="replace",
            grid_eval_steps=(1, 2, 4, 7, 12, 20, 35, 60),
        ),
        Profile.of(
            # The paper's setting: Yi-6B as the original model (pre-training fields unused)
            # on its hub dataset, 4k context, one epoch at 8 GPUs x 1 chunk x accumulation
            # 60 (arXiv) or 85 (GitHub) = 480 / 680 chunks per optimiser step.
            name="paper",
            ray_gpus_per_run=1.0,  # on Ray, each run gets a GPU of its own
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
            # evaluated (and checkpointed) every other step on fixed samples: a Yi-6B
            # checkpoint with its AdamW state is about 100 GB, and the official code's
            # forget set is a few hundred 4k chunks
            eval_every=2,
            eval_chunks=256,
            membership_chunks=1024,
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
            heldout_share=0.3,
        ),
    )
}


def get_profile(name: str, **overrides) -> Profile:
    """Return profile ``name`` with ``overrides`` applied (``None`` values are ignored).

    Raises ``ValueError`` naming the bad profile or field and listing the valid ones.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(field_names()))
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {field_names()}")
    profile = PROFILES[name].replace(**overrides)
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
    "membership_chunks",
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


def model_profile(profile: Profile, model: str, dataset: str, **sizes) -> Profile:
    """``profile`` pointed at a pre-trained model (``base_model``: a folder or hub id, the
    original; nothing is pre-trained) and a dataset in the paper's hub layout (a folder or
    hub id), with ``sizes`` (any fields: ``unlearn_lr``, ``unlearn_steps``, ``chunk_len``,
    ...) and the design of a run on someone's own model: no held-out retain documents, no
    per-domain batch, no grid steps (evaluated every ``eval_every`` steps). Checked
    (:func:`check_profile`). The real-LLM chapter and ``llmunlearn unlearn --model`` both
    build their profile here."""
    fields = {
        "base_model": str(model),
        "dataset": str(dataset),
        "unlearn_batch_per_domain": None,
        "unlearn_epochs": None,
        "heldout_share": 0.0,
        "grid_eval_steps": (),
        **sizes,
    }
    return check_profile(profile.replace(**fields))


def check_profile(profile: Profile) -> Profile:
    """``profile`` if every field holds an allowed value, else a ``ValueError`` naming the
    field, the value and what is allowed."""
    check_choice("design", profile.design, DESIGNS)
    check_retrained_designs(profile.retrained_designs)
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
    check_design(profile)
    check_choice("executor", profile.executor, EXECUTORS)
    if not isinstance(profile.compile, bool):
        raise ValueError(f"compile must be True or False, got {profile.compile!r}")
    gpus = profile.ray_gpus_per_run
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not 0 <= gpus <= 8:
        raise ValueError(f"ray_gpus_per_run must be a number in [0, 8], got {gpus!r}")
    return profile


def check_retrained_designs(designs) -> tuple[str, ...]:
    """``designs`` if it is a tuple of distinct :data:`DESIGNS` holding ``"matched"`` (the
    design every chapter judges against its exact retrained models), else a ``ValueError``
    naming the value and what is allowed."""
    if (
        not isinstance(designs, tuple)
        or "matched" not in designs
        or len(set(designs)) != len(designs)
        or any(d not in DESIGNS for d in designs)
    ):
        raise ValueError(
            f"retrained_designs must be a tuple of distinct designs of {DESIGNS} holding "
            f"'matched', got {designs!r}"
        )
    return designs


EXECUTORS = ("local", "ray")
"""Where runs execute (see :mod:`llmunlearn.training.executor`)."""


PRETRAIN_ORDERS = ("mixed", "late")

INSERTIONS = ("omit", "replace")
"""How an exact retrained model leaves out its forget chunks (``Profile.forget_insertion``)."""


def check_doses(doses, name: str = "doses") -> tuple[int, ...]:
    """``doses`` as a tuple if it is a non-empty, strictly increasing list of integers in
    1..16, else a ``ValueError`` naming the value and what is allowed."""
    d = tuple(doses) if isinstance(doses, (list, tuple)) else doses
    if (
        not isinstance(d, tuple)
        or not d
        or any(isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= 16 for x in d)
        or any(b <= a for a, b in zip(d, d[1:]))
    ):
        raise ValueError(
            f"{name} must be a non-empty, strictly increasing list of integers in 1..16, "
            f"got {doses!r}"
        )
    return d


def check_design(profile: Profile) -> Profile:
    """``profile`` if its design fields are in range, else a ``ValueError`` naming the
    field, the value and the allowed range: ``heldout_share`` in [0, 0.9],
    ``forget_repeats`` an integer in 1..16, ``pretrain_order`` one of
    :data:`PRETRAIN_ORDERS`, ``passage_chars`` None or at least ``min_doc_chars``,
    ``grid_eval_steps`` increasing positive integers, and a forget
    share of the domain's pre-training text (forget / (forget + retain) characters) of at
    most one half."""
    check_choice("pretrain_order", profile.pretrain_order, PRETRAIN_ORDERS)
    check_choice("forget_insertion", profile.forget_insertion, INSERTIONS)
    check_doses(profile.pilot_doses, "pilot_doses")
    share = profile.heldout_share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 0.9:
        raise ValueError(f"heldout_share must be a number in [0, 0.9], got {share!r}")
    repeats = profile.forget_repeats
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 16:
        raise ValueError(f"forget_repeats must be an integer in 1..16, got {repeats!r}")
    check_steps("grid_eval_steps", profile.grid_eval_steps, allow_empty=True)
    bounds = profile.general_doc_chars
    if bounds is not None and not (
        isinstance(bounds, tuple)
        and len(bounds) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        and 0 <= bounds[0] <= bounds[1]
    ):
        raise ValueError(
            f"general_doc_chars must be None or (min, max) integers with 0 <= min <= max, "
            f"got {bounds!r}"
        )
    cut = profile.passage_chars
    if cut is not None and (
        isinstance(cut, bool) or not isinstance(cut, int) or cut < max(1, profile.min_doc_chars)
    ):
        raise ValueError(
            f"passage_chars must be None or an integer of at least min_doc_chars "
            f"({profile.min_doc_chars}), got {cut!r}"
        )
    if profile.forget_chars and profile.forget_chars > profile.retain_chars:
        share = profile.forget_chars / (profile.forget_chars + profile.retain_chars)
        raise ValueError(
            f"forget share {share:.0%} of a domain's pre-training text (forget_chars "
            f"{profile.forget_chars:,}, retain_chars {profile.retain_chars:,}) is above "
            "the allowed 50 %"
        )
    return profile


def check_steps(name: str, steps, allow_empty: bool = False) -> tuple[int, ...]:
    """``steps`` as a tuple if it is strictly increasing positive integers, else a
    ``ValueError`` naming it and the value."""
    steps = tuple(steps)
    if not steps and not allow_empty:
        raise ValueError(f"{name} must name at least one step, got ()")
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"{name} must be positive integers, got {steps!r}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {steps!r}")
    return steps


def check_grid(profile: Profile) -> Profile:
    """``profile`` if its grid is valid (see :mod:`llmunlearn.studies.robustness`), else a
    ``ValueError`` naming the field and the value: at least one learning rate, each positive
    and finite, no learning rate or seed twice, seeds non-negative integers, known method
    names."""
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


def check_int(name: str, value, low: int) -> int:
    """``value`` if it is an integer >= ``low``, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """``value`` if it is a finite number above 0, else a ``ValueError`` naming it."""

    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _part(config, drop=()) -> dict:
    """One part of a profile as it enters a run's key: its fields but those in ``drop`` and
    those left unset (None), so that adding an optional field keeps earlier keys."""
    return {k: v for k, v in dataclasses.asdict(config).items() if v is not None and k not in drop}


def profile_config(profile: Profile) -> dict:
    """What of the profile enters an unlearning run's key (and an evaluation's data): its
    name and seed, and the parts that decide what a run computes (data, model,
    pre-training, unlearning), never ``grid`` (which runs a chapter asks for) or
    ``execution`` (where and how they run)."""
    return {
        "name": profile.name,
        "seed": profile.seed,
        "data": _part(profile.data),
        "model": _part(profile.model),
        "pretraining": _part(profile.pretraining),
        "unlearning": _part(profile.unlearning),
    }


def pretrain_config(profile, drop: tuple[str, ...] = ()) -> dict:
    """What of the profile (or of the pre-training stage's inputs, which hold the same
    parts and seed) enters a pre-training run's key: data (but the split design: one
    original model has seen both designs' forget sets), model and pre-training, and the
    seed; not the unlearning budget, so that changing it reuses the zoo. ``drop``:
    fields of the pre-training part the run does not depend on (the base model is
    trained before any forget chunk, whatever the dose and order)."""
    return {
        "seed": profile.seed,
        "data": _part(profile.data, drop=("design",)),
        "model": _part(profile.model),
        "pretraining": _part(profile.pretraining, drop=drop),
    }


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a ValueError listing them."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, valid))}")
    return value
