"""Pre-train the original model on D, with the one training loop.

D = every domain's forget documents (of both split designs) and retain documents plus
general/retain; approximate and general/evaluation are never trained on.

The tokenizer is trained on D minus every forget set (the retain sets and general/retain),
so no model of the zoo has a token that was merged for forget text: the exact retrained
model is blind to its forget set in its vocabulary too, and held-out data stays unseen in
every sense. The run directory holds the model in Hugging Face format
(``model/``: safetensors, config, tokenizer), the loss curve and perplexity on every split.

A profile with ``base_model`` (the paper's, Yi-6B) pre-trains nothing: the pre-trained LLM
is the original model (:func:`base_model_run`), and there is no exact retrained model.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from ..config import (
    DOMAINS,
    DataConfig,
    ExecutionConfig,
    ModelConfig,
    PretrainConfig,
    Profile,
    check_choice,
    pretrain_config,
)
from ..core import nll_loss
from ..data.corpus import (
    all_splits,
    chunk_documents,
    design_splits,
    forget_document_ids,
    fixed_sample,
    frozen_splits,
    thawed_splits,
    tokenizer_documents,
    training_documents,
)
from ..data.sources import Document
from ..measurement.metrics import perplexity
from ..models import build_model, check_checkpoint, load_model, n_params, runtime, train_tokenizer
from ..runs import Run, home, once, write_json
from .executor import run_missing, with_threads
from .loop import TrainConfig, length_grouped, saved_model, stream_order, train, training_flops


def pretraining_tokenizer(profile: Profile):
    """The byte-level BPE of ``profile``, trained on D minus every forget set (cached)."""

    return PreTrainedTokenizerFast.from_pretrained(tokenizer_run(profile).path)


def tokenizer_run(profile: Profile, splits: dict | None = None) -> Run:
    """The tokenizer stage's run of ``profile``: :func:`bpe_run` on D minus every forget
    set (:func:`~llmunlearn.data.corpus.tokenizer_documents` of ``splits``, the profile's
    :func:`~llmunlearn.data.corpus.all_splits` when not given) at its ``vocab_size``."""
    docs = tokenizer_documents(splits or all_splits(profile))
    return bpe_run(profile.name, profile.vocab_size, tuple(docs))


@once
def bpe_run(name: str, vocab_size: int, docs: tuple[Document, ...]) -> Run:
    """The tokenizer stage: a byte-level BPE of ``vocab_size`` trained on ``docs``
    (trained here when missing; the run is keyed by the documents' digests)."""
    run = Run.create(
        "tokenizer", name, {"vocab_size": vocab_size, "docs": sorted(d.sha256 for d in docs)}
    )
    if not run.done:
        train_tokenizer([d.text for d in docs], vocab_size).save_pretrained(run.path)
        run.finish({"vocab_size": vocab_size, "documents": len(docs)})
    return run


@dataclasses.dataclass(frozen=True)
class PretrainInputs:
    """What the pre-training stage reads (``pretrain`` in :data:`~llmunlearn.stages.STAGES`),
    resolved from a profile by :func:`pretraining_inputs`: the data stage's documents, the
    tokenizer stage's run and the parts of the profile its runs are keyed by and run with.
    A run of :func:`pretraining_run` or :func:`pretrain_base` gets these, never the
    profile. Hashable (the documents are tuples), so that each run is resolved once per
    process (:func:`~llmunlearn.runs.once`)."""

    name: str  # the profile's name: the runs' folder names
    seed: int  # the profile's seed: the default pre-training seed, the zoo's samples
    data: DataConfig  # in the runs' keys (the split design is not: see pretrain_config)
    model: ModelConfig
    pretraining: PretrainConfig
    execution: ExecutionConfig  # threads, compile: never in a key
    documents: tuple  # ((domain, ((split, (Document, ...)), ...)), ...): all_splits
    tokenizer: Run  # the tokenizer stage's run

    @property
    def design(self) -> str:
        return self.data.design

    def splits(self) -> dict[str, dict[str, list[Document]]]:
        """Every domain's and general's splits under both designs (as :func:`all_splits`)."""
        return thawed_splits(self.documents)

    def forget_documents(self, domain: str, design: str | None = None) -> list[Document]:
        """The forget set that ``domain``'s exact retrained model for ``design`` (default
        the profile's) leaves out."""
        joint = self.splits()[domain]
        return design_splits(joint, domain, design or self.design, self.data.dataset)["forget"]

    def forget_ids(self) -> set[str]:
        """Every forget document's id (:func:`~llmunlearn.data.corpus.forget_document_ids`)."""
        return forget_document_ids(self.splits())

    def chunks(self, docs: list[Document]):
        """``docs`` chunked with the stage's tokenizer (and the tokenizer)."""
        tokenizer = PreTrainedTokenizerFast.from_pretrained(self.tokenizer.path)
        return chunk_documents(tokenizer, docs, self.model.chunk_len), tokenizer


def pretraining_inputs(profile: Profile) -> PretrainInputs:
    """Resolve the pre-training stage's inputs from ``profile``: the splits of every
    domain (the data stage, split or read once per process) and the tokenizer's run (the
    tokenizer stage, trained when missing)."""
    splits = all_splits(profile)
    return PretrainInputs(
        name=profile.name,
        seed=profile.seed,
        data=profile.data,
        model=profile.model,
        pretraining=profile.pretraining,
        execution=profile.execution,
        documents=frozen_splits(splits),
        tokenizer=tokenizer_run(profile, splits),
    )


def forget_ids(profile: Profile) -> set[str]:
    """Every forget document's id of a profile
    (:func:`~llmunlearn.data.corpus.forget_document_ids`)."""
    return forget_document_ids(all_splits(profile))


def zoo_name(without: str | None, design: str) -> str:
    """``original`` or ``retrained-<domain>-<design>``: a pre-training run's kind."""
    return "original" if without is None else f"retrained-{without}-{design}"


BATCHING = "length-grouped"
"""How pre-training batches are formed (:func:`~llmunlearn.training.loop.length_grouped`):
in every run's configuration, so that models trained otherwise are not reused."""

SLICE_LR = 0.3
"""The late order's final slice trains at this fraction of ``pretrain_lr`` (its own warm-up
and cosine decay): a continued pre-training, not a restart."""


def training_order(doc_ids: list[str], forget: set[str], pretraining: PretrainConfig, seed: int):
    """The mixed order: ``pretrain_epochs`` passes over D in which every forget chunk
    appears ``forget_repeats`` times per pass (a fresh seeded permutation per pass):
    chunk indices, and the number of optimiser steps."""
    base = list(range(len(doc_ids)))
    extra = [i for i, d in enumerate(doc_ids) if d in forget] * (pretraining.forget_repeats - 1)
    pool = base + extra
    batch = pretraining.pretrain_batch
    steps = max(1, pretraining.pretrain_epochs * len(pool) // batch)
    return [pool[i] for i in stream_order(len(pool), steps * batch, seed)], steps


def slice_order(
    doc_ids: list[str], forget: set[str], pretraining: PretrainConfig, seed: int
) -> list[int]:
    """The late order's final slice: every forget chunk ``forget_repeats`` times and as
    many chunks replayed from the rest of D (a seeded sample), in one seeded shuffle."""

    rng = random.Random(seed + 1000)
    fidx = [i for i, d in enumerate(doc_ids) if d in forget]
    rest = [i for i, d in enumerate(doc_ids) if d not in forget]
    n = len(fidx) * pretraining.forget_repeats
    replay = [rest[rng.randrange(len(rest))] for _ in range(n)]
    order = fidx * pretraining.forget_repeats + replay
    rng.shuffle(order)
    return order


def retrained_order(
    order: list[int],
    doc_ids: list[str],
    removed: set[str],
    forget: set[str],
    pretraining: PretrainConfig,
    seed: int,
) -> list[int]:
    """The original's chunk ``order`` with the chunks of the ``removed`` documents taken
    out: left out (``forget_insertion="omit"``: fewer steps) or, with ``"replace"``, each
    replaced in place by a chunk replayed from D minus every forget set (``forget``; a
    seeded draw), so the exact retrained model takes the original's number of steps and
    differs from it only at those positions. An empty ``removed`` returns ``order``."""

    if not removed:
        return list(order)
    if pretraining.forget_insertion == "omit":
        return [i for i in order if doc_ids[i] not in removed]
    rng = random.Random(seed + 2000)
    rest = [i for i, d in enumerate(doc_ids) if d not in forget]
    return [i if doc_ids[i] not in removed else rest[rng.randrange(len(rest))] for i in order]


def pretrain(
    profile: Profile,
    *,
    seed: int | None = None,
    without: str | None = None,
    progress: bool = True,
    plan_only: bool = False,
    measure: str = "all",
    slice_seed: int | None = None,
) -> Run:
    """Pre-train (or reuse) a model of the zoo; returns its :class:`Run`.

    The entry point of one pre-training run: a profile with ``base_model`` pre-trains
    nothing (:func:`base_model_run`); else the stage's inputs are resolved from ``profile``
    (:func:`pretraining_inputs`) and handed to :func:`pretraining_run`, which documents
    the arguments, the run and its summary.
    """
    if profile.base_model:
        if without is not None or seed not in (None, profile.seed):
            raise ValueError(
                f"profile {profile.name!r} starts from the pre-trained base model "
                f"{profile.base_model!r}: there is no retrained model or second "
                "seed to pre-train (set base_model=None to pre-train a zoo)"
            )
        return base_model_run(profile)
    _check_zoo_args(profile.pretraining, without, measure, slice_seed)  # before any split
    return pretraining_run(
        pretraining_inputs(profile),
        seed=seed,
        without=without,
        progress=progress,
        plan_only=plan_only,
        measure=measure,
        slice_seed=slice_seed,
    )


def _check_zoo_args(pretraining: PretrainConfig, without, measure: str, slice_seed) -> None:
    """A zoo run's own arguments checked: a known ``measure``, a ``slice_seed`` only for
    the late order, a known domain to leave out, measured everywhere."""
    check_choice("measure", measure, MEASURES)
    if slice_seed is not None and pretraining.pretrain_order != "late":
        raise ValueError(
            f"slice_seed={slice_seed!r} needs pretrain_order='late' (a final slice to seed), "
            f"got pretrain_order={pretraining.pretrain_order!r}"
        )
    if without is not None:
        check_choice("domain", without, DOMAINS)
        if measure != "all":
            raise ValueError(f"a retrained model is measured with measure='all', got {measure!r}")


@once
def pretraining_run(
    inputs: PretrainInputs,
    *,
    seed: int | None = None,
    without: str | None = None,
    progress: bool = True,
    plan_only: bool = False,
    measure: str = "all",
    slice_seed: int | None = None,
) -> Run:
    """The pre-training stage: a model of the zoo from ``inputs``; returns its :class:`Run`.

    With ``without=None`` this is the *original model*, trained on D. With
    ``without=domain`` it is that domain's *exact retrained model* for the profile's split
    design: the same tokenizer, seed and chunk order as the original with that design's
    forget chunks of the domain left out (:func:`retrained_order`: omitted, so there are
    fewer steps, or replaced by replayed chunks, so there are as many). The original model
    does not depend on the design.

    The profile's ``pretrain_order`` says where the forget chunks are: ``"mixed"`` shuffles
    them into every epoch (``forget_repeats`` times per epoch); ``"late"`` pre-trains a
    *base* on D minus every forget set (:func:`pretrain_base`, shared by the original and
    every retrained model of the seed) and puts the forget sets in a final slice
    (:func:`slice_order`), so a retrained model repeats only that slice without its forget
    chunks: exact by construction (SISA's slicing, Bourtoule et al. 2021) and far cheaper.

    ``summary.json`` holds ``ppl[domain][split]`` for every domain (and general),
    ``n_params``, ``tokens``, ``flops`` (6 x parameters x trained tokens, from scratch:
    the base included), ``branch_flops`` (what this model adds to its base; the whole for
    the mixed order), ``wall_s`` and the loss curve ``log``.

    ``plan_only`` returns the run's folder without training (``.done`` when it is cached:
    what an executor asks before it sends a run away).

    ``measure`` says where the finished model's perplexity is measured (one of
    :data:`MEASURES`): ``"all"`` (an original: every split; a retrained model: what a rule
    reads of it), or ``"gap"``, for an original that only the pilot or the order contrast
    reads (its memorisation gap and general text: each domain's matched forget and
    approximate sets and general's evaluation set). A ``"gap"`` model is a run of its own.

    ``slice_seed`` (late order only; default ``seed``) seeds the final slice alone: which
    chunks are replayed, their shuffle, the replacements of the forget chunks and the
    batching. A retrained model with another slice seed shares the referee's base and is
    independent of it where the forget sets were seen: the *sibling*
    (:func:`sibling_seed`), the positive control of the rules that judge unlearning from
    this seed's original.
    """
    _check_zoo_args(inputs.pretraining, without, measure, slice_seed)
    seed = inputs.seed if seed is None else seed
    design, pretraining = inputs.design, inputs.pretraining
    removed = [] if without is None else inputs.forget_documents(without)
    run = _zoo_run(inputs, seed, without, measure, slice_seed, removed)
    if run.done or plan_only:
        return run
    kind = zoo_name(without, design)

    late = pretraining.pretrain_order == "late"
    base = pretrain_base(inputs, seed, progress) if late else None
    torch.set_num_threads(inputs.execution.threads)
    train_set, tokenizer = inputs.chunks(training_documents(inputs.splits()))
    doc_ids = list(train_set["doc_id"])
    forget = inputs.forget_ids()
    draws = seed if slice_seed is None else slice_seed  # the final slice's (the base keeps seed)
    if late:
        model, _ = load_model(base.path / "model")
        order = slice_order(doc_ids, forget, pretraining, draws)
        lr, warmup, steps = pretraining.pretrain_lr * SLICE_LR, 0.1, None
    else:
        model = build_model(inputs.model, len(tokenizer), seed)
        order, steps = training_order(doc_ids, forget, pretraining, seed)
        lr, warmup = pretraining.pretrain_lr, 0.05
    if removed or late:
        order = retrained_order(order, doc_ids, {d.id for d in removed}, forget, pretraining, draws)
        steps = max(1, len(order) // pretraining.pretrain_batch)
    result = train_lm(
        pretraining,
        inputs.execution,
        model,
        train_set,
        order,
        steps,
        lr,
        warmup,
        draws,
        run,
        f"pre-train {inputs.name} {kind}"
        + (" (final slice)" if late else "")
        + (f" (seed {seed})" if seed != inputs.seed else "")
        + (f" (slice seed {draws})" if "slice seed" in run.config else ""),
        progress,
    )
    model = saved_model(result, run.path / "model", tokenizer)  # from every process
    if model is None:
        return run  # under `accelerate launch`, the main process measures and writes
    run.finish(_zoo_summary(inputs, model, tokenizer, without, measure, base, result, steps))
    return run


def _zoo_run(inputs: PretrainInputs, seed: int, without, measure: str, slice_seed, removed):
    """The :class:`Run` of a zoo model: its key holds the profile's pre-training fields
    (``forget_insertion`` only for a retrained model: how it leaves its forget chunks out does
    not change the original), the seed, the batching, every split's documents, what it is
    trained without, a ``"gap"`` measure and a sibling's slice seed."""
    config = {
        "profile": pretrain_config(inputs, () if without is not None else ("forget_insertion",)),
        "seed": seed,
        "batching": BATCHING,
        "docs": {
            d: {s: [x.sha256 for x in v] for s, v in sp.items()}
            for d, sp in inputs.splits().items()
        },
        "without": without
        and {
            "domain": without,
            "design": inputs.design,
            "docs": sorted(d.sha256 for d in removed),
        },
        **({"measure": measure} if measure != "all" else {}),  # earlier runs keep their hash
        **({"slice seed": slice_seed} if slice_seed not in (None, seed) else {}),
    }
    sliced = f"-slice{slice_seed}" if "slice seed" in config else ""
    name = f"{inputs.name}-{zoo_name(without, inputs.design)}-s{seed}{sliced}"
    return Run.create("pretrain", name, config)


def _zoo_summary(inputs: PretrainInputs, model, tokenizer, without, measure, base, result, steps):
    """A finished zoo model's ``summary.json``: its perplexity where it is measured (an
    original: every split of both designs, the training-only splits sampled; a retrained
    model only where a rule reads it; a ``"gap"`` original its gap and general), the chunk
    counts, tokens, FLOPs and wall time from scratch (the base included) and of the branch,
    steps and the loss curve (the base's, then the slice's)."""
    chunks = {
        d: {
            s: _zoo_chunks(inputs, tokenizer, s, v)
            for s, v in sp.items()
            if _is_measured(d, s, without, inputs.design, measure)
        }
        for d, sp in inputs.splits().items()
    }
    n = n_params(model)
    before = base.summary if base is not None else {"tokens": 0, "wall_s": 0.0, "log": []}
    log = before["log"] + [
        {**r, "tokens": r["tokens"] + before["tokens"], "stage": "slice"} for r in result["log"]
    ]
    return {
        "ppl": {
            d: {s: perplexity(model, c)["ppl"] for s, c in cs.items()} for d, cs in chunks.items()
        },
        "n_chunks": {d: {s: len(c) for s, c in cs.items()} for d, cs in chunks.items()},
        "n_params": n,
        "order": inputs.pretraining.pretrain_order,
        "base": base.path.name if base is not None else None,
        "tokens": before["tokens"] + result["tokens"],
        "flops": training_flops(n, before["tokens"] + result["tokens"]),
        "branch_tokens": result["tokens"],
        "branch_flops": training_flops(n, result["tokens"]),
        "wall_s": before["wall_s"] + result["wall_s"],
        "branch_wall_s": result["wall_s"],
        "steps": (base.summary["steps"] if base is not None else 0) + steps,
        "log": log,
    }


MEASURES = ("all", "gap")
"""Where :func:`pretrain` measures a finished model (see its ``measure``)."""

GAP_SPLITS = ("matched/forget", "matched/approximate", "evaluation")
"""The splits a ``"gap"`` original is measured on (general's is ``evaluation``)."""


def _is_measured(domain: str, split: str, without: str | None, design: str, measure: str):
    """Whether a finished pre-trained model is measured on ``domain``'s ``split``: a
    retrained model where a rule reads it (:func:`_read_of_retrained`), an original
    everywhere, or on :data:`GAP_SPLITS` alone with ``measure="gap"``."""
    if without is not None:
        return _read_of_retrained(domain, split, without, design)
    return measure == "all" or split in GAP_SPLITS


def _read_of_retrained(domain: str, split: str, without: str, design: str) -> bool:
    """Whether a retrained model (``without``, ``design``) is measured on ``domain``'s
    ``split``: its own domain's splits of its design (and the shared retain splits), the
    other domains' approximate set of its design (the ground truth's control) and
    general; the rest no rule reads, and an original is measured everywhere."""
    if domain == "general":
        return True
    if domain == without:
        return "/" not in split or split.startswith(f"{design}/")
    return split == f"{design}/approximate"


ZOO_TRAIN_SAMPLE = 64
"""Chunks of each training-only split (a domain's regulariser ``retain``, general's
``retain``) on which a zoo model's perplexity is reported: a fixed sample, since no rule
reads those numbers (the held-out retain, forget, approximate and general evaluation
splits are measured whole)."""


def _zoo_chunks(inputs: PretrainInputs, tokenizer, split: str, documents):
    """The chunks of ``split`` a zoo model is evaluated on: every chunk, or a fixed sample
    of :data:`ZOO_TRAIN_SAMPLE` for the training-only ``retain`` splits."""
    chunks = chunk_documents(tokenizer, documents, inputs.model.chunk_len)
    return fixed_sample(chunks, ZOO_TRAIN_SAMPLE, inputs.seed) if split == "retain" else chunks


def train_lm(
    pretraining: PretrainConfig,
    execution: ExecutionConfig,
    model,
    train_set,
    order,
    steps,
    lr,
    warmup,
    seed,
    run,
    desc,
    progress,
    checkpoints=5,
):
    """The zoo's one recipe for a stretch of pre-training (a base, a mixed-order model or
    a final slice): next-token loss over ``order`` of ``train_set`` in batches of
    ``pretrain_batch`` (grouped by length within windows, :func:`length_grouped`, and cut
    to their longest chunk), AdamW with weight decay 0.1, ``warmup`` then cosine decay,
    ``checkpoints`` times a checkpoint (0: none, for a run shorter than its saves).
    Returns :func:`~llmunlearn.training.loop.train`'s result; a run that diverged is a
    ``RuntimeError`` naming the learning rate."""
    batch = pretraining.pretrain_batch
    mask = train_set.with_format("torch", columns=["attention_mask"])[:]["attention_mask"]
    order = length_grouped(order, mask.sum(1).tolist(), batch, seed)
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        batch=batch,
        micro_batch=batch,
        warmup_ratio=warmup,
        weight_decay=0.1,
        seed=seed,
        checkpoint_every=max(1, steps // checkpoints) if checkpoints else 0,
        compile=execution.compile,
    )
    result = train(
        model,
        lambda m, b: nll_loss(m, b["train"]),
        {"train": train_set},
        cfg,
        run.path,
        orders={"train": order},
        desc=desc,
        progress=progress,
    )
    if result["status"] != "finished":
        raise RuntimeError(
            f"pre-training diverged at step {len(result['log'])}; "
            f"lower pretrain_lr (was {pretraining.pretrain_lr})"
        )
    return result


@once
def pretrain_base(inputs: PretrainInputs, seed: int, progress: bool = True) -> Run:
    """The late order's base: D minus every forget set, ``pretrain_epochs`` passes, the
    recipe of the mixed order. Every model of the seed (the original and each retrained
    model) continues from it, so none of them shares a forget chunk through it."""

    forget = inputs.forget_ids()
    docs = [d for d in training_documents(inputs.splits()) if d.id not in forget]
    pretraining = inputs.pretraining
    run = Run.create(
        "pretrain",
        f"{inputs.name}-base-s{seed}",
        {
            "profile": pretrain_config(
                inputs, drop=("forget_repeats", "pretrain_order", "forget_insertion")
            ),
            "seed": seed,
            "batching": BATCHING,
            "docs": sorted(d.sha256 for d in docs),
        },
    )
    if run.done:
        return run
    torch.set_num_threads(inputs.execution.threads)
    train_set, tokenizer = inputs.chunks(docs)
    model = build_model(inputs.model, len(tokenizer), seed)
    steps = max(1, pretraining.pretrain_epochs * len(train_set) // pretraining.pretrain_batch)
    order = stream_order(len(train_set), steps * pretraining.pretrain_batch, seed)
    result = train_lm(
        pretraining,
        inputs.execution,
        model,
        train_set,
        order,
        steps,
        pretraining.pretrain_lr,
        0.05,
        seed,
        run,
        f"pre-train {inputs.name} base (no forget set)"
        + (f" (seed {seed})" if seed != inputs.seed else ""),
        progress,
    )
    model = saved_model(result, run.path / "model", tokenizer)  # from every process
    if model is None:
        return run
    run.finish(
        {
            "tokens": result["tokens"],
            "wall_s": result["wall_s"],
            "steps": steps,
            "log": [{**r, "stage": "base"} for r in result["log"]],
            "n_params": n_params(model),
        }
    )
    return run


@once
def base_model_run(profile: Profile) -> Run:
    """The original model of a profile with ``base_model``, as a pre-training run whose
    ``model`` links to the checkpoint (a local folder, or the hub download); nothing is
    trained. ``summary.json`` holds ``n_params`` (counted without loading the weights)
    and no training figures."""

    run = Run.create("pretrain", f"{profile.name}-base", {"base_model": profile.base_model})
    if run.done:
        return run
    source = Path(profile.base_model).expanduser()
    if not source.exists():
        source = Path(snapshot_download(profile.base_model))  # needs the network once
    link = run.path / "model"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(source.resolve(), target_is_directory=True)
    check_checkpoint(link)
    with torch.device("meta"):  # shapes only: no memory, tied embeddings stay tied
        empty = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(link))
    run.finish(
        {
            "base_model": profile.base_model,
            "n_params": n_params(empty),
            "ppl": {},
            "steps": 0,
            "tokens": None,
            "flops": None,
            "wall_s": 0.0,
            "log": [],
        }
    )
    return run


def pretrain_zoo(
    profile: Profile, progress: bool = True, seed: int | None = None
) -> dict[str, Run]:
    """Every model of the zoo for the profile's split design and pre-training ``seed``
    (default the profile's): the original, ``retrained-<domain>`` (each domain's exact
    retrained model for that design), and, at the profile's seed, the original recipe with
    a second seed (``original-seed2``, to read differences against seed noise). With a
    ``base_model``, the zoo is that model alone. Once the original exists, the others
    train in ``profile.jobs`` parallel processes."""

    seed = profile.seed if seed is None else seed
    zoo = {"original": pretrain(profile, seed=seed, progress=progress)}
    if not profile.base_model:
        # the stage's inputs, resolved once and handed to every model of the zoo
        inputs = pretraining_inputs(profile)
        worker = with_threads(inputs, profile.jobs)
        quiet = profile.jobs > 1 or not progress
        tasks = [
            (f"retrained-{d}", (worker,), {"without": d, "seed": seed, "progress": not quiet})
            for d in DOMAINS
        ]
        if seed == profile.seed:
            tasks.append(
                ("original-seed2", (worker,), {"seed": profile.seed + 1, "progress": not quiet})
            )
        # Ray tasks carry the late order's base (built with the original); local ones read it
        late = profile.pretrain_order == "late" and profile.executor != "local"
        base = [pretrain_base(inputs, seed, False).path] if late else []
        runs = run_missing(
            pretraining_run,
            tasks,
            profile.jobs,
            profile.threads,
            desc=f"pre-training the {profile.design} zoo",
            executor=profile.executor,
            address=profile.ray_address,
            inputs=("data", "tokenizer", *(b.relative_to(home()) for b in base)),
            gpus=profile.ray_gpus_per_run,
        )
        zoo.update({name: run for (name, _, _), run in zip(tasks, runs)})
    suffix = "" if seed == profile.seed else f"-s{seed}"
    write_json(
        home() / "pretrain" / f"zoo-{profile.name}-{profile.design}{suffix}.json",
        {
            name: {
                "path": run.path,
                **{
                    k: run.summary[k]
                    for k in ("ppl", "n_params", "steps", "tokens", "flops", "wall_s")
                },
            }
            for name, run in zoo.items()
        },
    )
    return zoo


def replicate_zoos(profile: Profile, progress: bool = True) -> dict[int, dict[str, Run]]:
    """The zoo of every independently pre-trained original the grid runs on
    (``grid_seeds``): seed -> :func:`pretrain_zoo` at that seed."""
    return {s: pretrain_zoo(profile, progress=progress, seed=s) for s in profile.grid_seeds}


SIBLING_OFFSET = 500
"""A sibling's slice seed is its pre-training seed plus this (far from every other seed the
profiles use, so no two slices share their draws)."""


def sibling_seed(seed: int) -> int:
    """The final slice's seed of the sibling of the models pre-trained with ``seed``."""
    return seed + SIBLING_OFFSET


def siblings(profile: Profile, progress: bool = True, seed: int | None = None) -> dict[str, Run]:
    """Each domain's *sibling* of the exact retrained model of ``seed`` (default the
    profile's): the same base and recipe, its final slice drawn with :func:`sibling_seed`
    (:func:`pretrain`'s ``slice_seed``). It never saw the forget set and is independent of
    the referee exactly where the original saw it, the only randomness an unlearned model of
    this seed's original is judged against: the positive control of the rules. Empty for
    the mixed order or a ``base_model`` (no slice to redraw). ``{domain: run}``."""
    if profile.base_model or profile.pretrain_order != "late":
        return {}
    seed = profile.seed if seed is None else seed
    return {
        d: pretrain(profile, without=d, seed=seed, slice_seed=sibling_seed(seed), progress=progress)
        for d in DOMAINS
    }


def memorisation_gap(run: Run, design: str = "matched") -> dict[str, float]:
    """Per domain: M = approximate / forget perplexity of a pre-trained model (whole sets)."""
    ppl = run.summary["ppl"]
    return {d: ppl[d][f"{design}/approximate"] / ppl[d][f"{design}/forget"] for d in DOMAINS}


def full_zoo(profile: Profile, progress: bool = True) -> dict[str, Run]:
    """Every pre-trained model of the profile's ``retrained_designs``: ``original``,
    ``original-seed2`` and ``retrained-<domain>-<design>`` for each domain and such design
    (8 models with both designs)."""

    out = {}
    for design in profile.retrained_designs:
        zoo = pretrain_zoo(profile.replace(design=design), progress=progress)
        out.setdefault("original", zoo["original"])
        out.update(
            {zoo_name(d, design): zoo[f"retrained-{d}"] for d in DOMAINS if f"retrained-{d}" in zoo}
        )
        if "original-seed2" in zoo:
            out.setdefault("original-seed2", zoo["original-seed2"])
    return out


def load_original(run: Run):
    """The pre-trained model and tokenizer of a finished pre-training run."""
    return load_model(run.path / "model")


def load_reference(run: Run):
    """The original model of a finished pre-training run as the methods that read it hold
    it: frozen (eval mode, no gradients) and in the compute dtype, bf16 on a GPU (what bf16
    autocast gives its matmuls anyway, in half the memory of fp32 master weights) and fp32
    on the CPU."""
    model, _ = load_model(
        run.path / "model", dtype=torch.bfloat16 if runtime()[1] == "bf16" else None
    )
    return model.eval().requires_grad_(False)
