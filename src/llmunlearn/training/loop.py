"""The one training loop, on ``accelerate``: pre-training, retraining and unlearning.

Single process by default; the same code runs under ``accelerate launch`` on several
processes (DDP or FSDP). The order follows accelerate's documentation: build, ``prepare``,
count steps, accumulate, gather for metrics, save from the main process after unwrapping.

A loss function sees one micro-batch per data *stream* (``{"forget": batch}`` for gradient
ascent, ``{"forget": ..., "retain": ...}`` for the regularised methods, ``{"train": ...}``
for pre-training) and returns a scalar to *minimise*. Each stream is read in a fixed order
(a new seeded permutation every epoch), so a run is deterministic and can resume mid-way.
"""

from __future__ import annotations

import functools
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch.distributed.fsdp import FullyShardedDataParallel

from ..config import TENSOR_COLUMNS, check_choice
from ..core import trim_padding
from ..models import load_model, runtime
from ..progress import progress_bar as tqdm
from ..runs import folder_written, read_json, write_json
from .optim import SophiaG, estimate_hessian

OPTIMIZERS = ("adamw", "sophia")


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # optimiser steps
    lr: float  # peak learning rate
    batch: int  # chunks per optimiser step and stream, over all processes
    micro_batch: int = 8  # chunks per forward pass; the rest is gradient accumulation
    warmup_ratio: float = 0.03  # paper: 3 % linear warmup, then cosine decay to 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 42
    checkpoint_every: int = 0  # optimiser steps between resumable checkpoints (0: never)
    optimizer: str = "adamw"  # "adamw" (the paper's) or "sophia" (SophiaG, see optim.py)
    hessian_every: int = 10  # Sophia: steps between Hessian estimates (k in its paper)
    gradient_checkpointing: bool = False  # recompute activations in backward (large models)
    schedule: str = "cosine"  # after warm-up: "cosine" decay to 0, or "constant" (grid runs)
    compile: bool = False  # the loss reads a torch.compile'd model (dynamic shapes)


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def stream_order(n: int, count: int, seed: int) -> list[int]:
    """``count`` indices into a stream of ``n`` chunks: a fresh seeded permutation per
    epoch, concatenated. Step ``s`` of a run always sees the same chunks."""
    g = torch.Generator().manual_seed(seed)
    out: list[int] = []
    while len(out) < count:
        out.extend(torch.randperm(n, generator=g).tolist())
    return out[:count]


def trimmed_collate(rows: list[dict]) -> dict:
    """A micro-batch cut to its longest chunk's real tokens: chunks are right-padded and
    every loss masks padding, so only padded positions go (a batch of short passages no
    longer pays for ``chunk_len`` positions each)."""
    return trim_padding(torch.utils.data.default_collate(rows))


def length_grouped(order: list[int], lengths, batch: int, seed: int, window: int = 16) -> list[int]:
    """``order`` regrouped so that each batch holds chunks of similar length (a batch is
    then cut to its longest, :func:`trimmed_collate`): every ``window`` consecutive
    batches are sorted by chunk length, cut into batches, and those batches shuffled
    (seeded), as Hugging Face's length-grouped sampler does. The same chunks in the same
    windows: a window's chunks are trained in that window, only their pairing changes.
    Sorting is stable, so equal lengths keep their order."""
    rng = random.Random(seed)
    whole = len(order) - len(order) % batch  # a last incomplete batch stays last
    out: list[int] = []
    size = batch * window
    for start in range(0, whole, size):
        part = sorted(order[start : min(start + size, whole)], key=lambda i: -lengths[i])
        batches = [part[j : j + batch] for j in range(0, len(part), batch)]
        rng.shuffle(batches)
        out += [i for b in batches for i in b]
    return out + order[whole:]


def training_flops(
    n_params: int,
    trained_tokens: int,
    *,
    reference_tokens: int = 0,
    hessian_tokens: int = 0,
    labelling_tokens: int = 0,
) -> int:
    """FLOPs of a training run by one rule for every run (Kaplan et al.'s 6 N per token):
    6 N per trained token (forward and backward), 6 N per token of a Sophia Hessian
    estimate (a forward and a backward of its own), 2 N per token that a frozen reference
    model reads (forward only) and 2 N per token of a one-off pass of the original model
    that makes labels (adversarial samples)."""
    return 6 * n_params * (trained_tokens + hessian_tokens) + 2 * n_params * (
        reference_tokens + labelling_tokens
    )


SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, steps: int, warmup: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based) of
    ``steps``: a linear warmup that reaches the peak at step ``warmup - 1``, then cosine
    decay towards 0. Every step trains: the first uses ``1 / warmup`` of the peak, the
    last a small positive rate (the official code's warmup starts at 0, which makes its
    first update a no-op). ``schedule="constant"`` keeps the peak after the warmup, so
    that every evaluated step of a run sees the same rate (the grid's steps axis)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup + 1) / (steps - warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


STATE = "train_state.json"
"""The loop's state (step, log, evaluations), kept inside the checkpoint it belongs to."""


def save_checkpoint(accelerator, run_dir: Path, state: dict) -> None:
    """Write a resumable checkpoint so that a kill at any moment leaves a complete one:
    the new checkpoint is written in full under ``checkpoint.new`` (weights, optimiser and
    :data:`STATE`), then takes the place of ``checkpoint`` by two renames, the previous
    one kept as ``checkpoint.old`` in between (:func:`last_checkpoint` reads it if the
    kill fell between the renames)."""

    new, cur, old = (run_dir / f"checkpoint{s}" for s in (".new", "", ".old"))
    if accelerator.is_main_process:
        shutil.rmtree(new, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(new))
    if accelerator.is_main_process:
        write_json(new / STATE, state)  # last: a checkpoint without it is incomplete
        shutil.rmtree(old, ignore_errors=True)
        if cur.exists():
            cur.rename(old)
        new.rename(cur)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _loaders(streams: dict, orders, cfg: TrainConfig, batch: int, micro: int, start: int):
    """One ``DataLoader`` per stream: its chunks in their order (``orders``' or a seeded
    :func:`stream_order`) from the resumed step ``start`` on, ``micro`` chunks a batch, each
    cut to its longest chunk. An empty stream or an order too short for the steps is a
    ``ValueError``."""
    loaders = {}
    for i, (name, ds) in enumerate(streams.items()):
        if len(ds) == 0:
            raise ValueError(f"data stream {name!r} is empty")
        order = (orders or {}).get(name) or stream_order(len(ds), cfg.steps * batch, cfg.seed + i)
        if len(order) < cfg.steps * batch:
            raise ValueError(
                f"stream {name!r} has {len(order)} chunks in its order but "
                f"{cfg.steps} steps x batch {batch} need {cfg.steps * batch}"
            )
        columns = [c for c in (*TENSOR_COLUMNS, "target") if c in ds.column_names]
        subset = ds.with_format("torch", columns=columns).select(order[start * batch :])
        loaders[name] = torch.utils.data.DataLoader(
            subset, batch_size=micro, shuffle=False, collate_fn=trimmed_collate
        )
    return loaders


def _optimiser(model, cfg: TrainConfig, device, start: int):
    """``(optimizer, scheduler)``: AdamW (fused on a GPU: one kernel per step over every
    fp32 master weight) or SophiaG, and the warm-up schedule at the resumed step ``start``.

    The scheduler is a function of the step alone, rebuilt at the resumed step rather than
    saved: accelerate saves registered objects as pickles and reads them back with
    ``weights_only=False``, and a checkpoint folder is nothing to unpickle. It is stepped by
    hand once per optimiser step: accelerate's wrapper would step it once per process,
    which suits per-process step counts, not our global ones."""
    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check_choice("schedule", cfg.schedule, SCHEDULES)
    if cfg.optimizer == "sophia":
        optimizer = SophiaG(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=cfg.lr,
            betas=cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            fused=torch.device(device).type == "cuda",
        )
    warmup = max(1, math.ceil(cfg.warmup_ratio * cfg.steps))
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.steps, warmup, cfg.schedule), last_epoch=start - 1
    )
    return optimizer, scheduler


def _optimiser_step(
    accelerator, model, optimizer, scheduler, iters, loss_fn, cfg, accum, step, state
):
    """One optimiser step: ``accum`` micro-batches of every stream (SophiaG's Hessian
    estimate on the first, every ``hessian_every`` steps, counted in ``state``), clipped,
    then the update and the schedule. The loss and token count stay on the device until the
    step ends (one host synchronisation per step, not per micro-batch). Returns ``(mean
    loss over processes, tokens over processes)``."""
    world = accelerator.num_processes
    step_loss = torch.zeros((), device=accelerator.device)
    step_tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    for micro_step in range(accum):
        batches = {name: next(it) for name, it in iters.items()}
        if isinstance(optimizer.optimizer, SophiaG) and micro_step == 0:
            # SophiaG's B: the tokens of one step, over every stream and process; the
            # Hessian estimate covers the same streams (SophiaG's training script)
            optimizer.optimizer.tokens_per_step = (
                int(sum(b["attention_mask"].sum() for b in batches.values())) * accum * world
            )
            if (step - 1) % cfg.hessian_every == 0:
                state["hessian_tokens"] += world * estimate_hessian(
                    model, list(batches.values()), optimizer.optimizer
                )
        with accelerator.accumulate(model):
            loss = loss_fn(model, batches)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients:
                scheduler.step()
            optimizer.zero_grad()
        step_loss += loss.detach().float() / accum
        step_tokens += sum(b["attention_mask"].sum() for b in batches.values())
    loss = accelerator.gather(step_loss.reshape(1)).mean().item()
    return loss, int(accelerator.gather(step_tokens.reshape(1)).sum())


def _on(loss_fn, compiled, model, batches):
    return loss_fn(compiled, batches)


def _with_frozen(loss_fn, frozen, model, batches):
    return loss_fn(model, batches, *frozen)


def place_frozen(accelerator, module):
    """A frozen module (the original model a method reads: no gradient, eval mode) placed
    for training: under FSDP (version 1) wrapped in FSDP with the plugin's sharding, offload,
    wrapping and precision, so each process holds its shards and a forward gathers one
    layer at a time (12.1 GB for Yi-6B in bf16 becomes 1.5 GB on each of 8 GPUs), like
    TRL's reference models; elsewhere moved whole to this process's device. Not run on a
    GPU by this build: accelerate enables FSDP only on GPU process groups."""
    module = module.eval().requires_grad_(False)
    if accelerator.distributed_type != DistributedType.FSDP or accelerator.is_fsdp2:
        return module.to(accelerator.device)
    plugin = accelerator.state.fsdp_plugin
    plugin.set_auto_wrap_policy(module)
    return FullyShardedDataParallel(
        module,
        sharding_strategy=plugin.sharding_strategy or plugin.reshard_after_forward,
        cpu_offload=plugin.cpu_offload,
        auto_wrap_policy=plugin.auto_wrap_policy,
        mixed_precision=plugin.mixed_precision_policy,
        sync_module_states=plugin.sync_module_states,
        use_orig_params=plugin.use_orig_params,
        limit_all_gathers=plugin.limit_all_gathers,
        device_id=accelerator.device,
    ).eval()


def save_model(accelerator, model, path: Path, tokenizer=None) -> None:
    """``model`` whole as a Hugging Face folder at ``path`` (with ``tokenizer``), written by
    the main process under ``<path>.partial`` and then renamed, so a folder of that name is
    always complete. Every process calls it: under FSDP the full state dict is gathered from
    the shards (accelerate's ``get_state_dict``, a collective); elsewhere it is the
    unwrapped model's own. ``model`` may be prepared or not."""

    state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        with folder_written(path) as partial:
            accelerator.unwrap_model(model).save_pretrained(partial, state_dict=state)
            if tokenizer is not None:
                tokenizer.save_pretrained(partial)
    accelerator.wait_for_everyone()


def saved_model(result: dict, path: Path, tokenizer=None):
    """Save the trained model of a :func:`train` ``result`` whole at ``path`` (with
    ``tokenizer``); every process calls it. The main process gets back a plain model to
    measure (under FSDP reloaded from ``path``: its own copy holds shards), the others
    None."""
    result["save"](result["model"], path, tokenizer)
    if not result["is_main_process"]:
        return None
    return (load_model(path)[0] if result["sharded"] else result["model"]).eval()


def fsdp_launched() -> bool:
    """Whether this process was started by ``accelerate launch`` with an FSDP configuration
    (known before any ``Accelerator`` exists: what a method that cannot run sharded asks)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def last_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of an interrupted run (``checkpoint``, else
    ``checkpoint.old``), or None; ``checkpoint.new`` may be partial and is never read."""
    for name in ("checkpoint", "checkpoint.old"):
        if (run_dir / name / STATE).exists():
            return run_dir / name
    return None


def plan_batch(batch: int, world: int, micro_batch: int) -> tuple[int, int, int]:
    """Split ``batch`` chunks per optimiser step over ``world`` processes: returns
    ``(micro, accumulation, effective batch)``. A batch that does not divide evenly is
    rounded up to the nearest one that does (never down, so no chunk of the asked batch
    is dropped), and the effective batch is what the run records."""
    if batch < 1 or world < 1 or micro_batch < 1:
        raise ValueError(
            f"batch ({batch}), processes ({world}) and micro_batch "
            f"({micro_batch}) must be at least 1"
        )
    per_process = math.ceil(batch / world)
    micro = min(micro_batch, per_process)
    accum = math.ceil(per_process / micro)
    return micro, accum, micro * accum * world


def train(
    model,
    loss_fn: Callable,
    streams: dict,
    cfg: TrainConfig,
    run_dir: Path,
    *,
    orders: dict | None = None,
    on_eval: Callable | None = None,
    eval_every: int = 0,
    eval_steps: tuple = (),
    frozen: tuple = (),
    desc: str = "train",
    progress: bool = True,
) -> dict:
    """Optimise ``model`` for ``cfg.steps`` steps of ``loss_fn`` over ``streams``.

    ``streams`` maps a name to a chunked ``datasets.Dataset``; ``orders`` may give a
    stream's chunk indices in the order to read them (default: :func:`stream_order`).
    ``on_eval(model, step, save)`` returns a dict of metrics, recorded at step 0, every
    ``eval_every`` steps, at each of ``eval_steps`` and at the end; it runs on every
    process (under FSDP on the sharded model, whose forward gathers each layer's full
    parameters, so every process must evaluate the same chunks), and ``save(model, path,
    tokenizer=None)`` writes a model whole from there (:func:`save_model`). ``frozen``
    modules (the original model that some methods read) are placed by :func:`place_frozen`
    (under FSDP sharded like the trained model) and handed to the loss as
    ``loss_fn(model, batches, *frozen)``. Returns ``{"status": "finished" |
    "diverged", "log": [...], "evals": [...], "tokens": int, "hessian_tokens": int,
    "batch": int, "wall_s": float, "eval_s": float, "model": the trained model
    (unwrapped; under FSDP the prepared wrapper), "sharded": bool, "save": save,
    "is_main_process": bool}`` (``eval_s``: the part of ``wall_s`` spent in ``on_eval``
    after step 0; ``batch``: the effective chunks per step, see :func:`plan_batch`);
    ``run_dir/checkpoint`` lets an interrupted run resume where it stopped. Save the
    trained model with ``result["save"](result["model"], path, tokenizer)`` (or
    :func:`saved_model`) from every process: under FSDP (``sharded``) each process holds
    its shards only, and the parameters cannot be read whole.

    Longer than the library's other functions on purpose: accelerate's order (build,
    prepare, resume, the steps with their evaluations and checkpoints, gather) reads top
    to bottom here; the loaders, the optimiser and one step are helpers above."""

    accelerator = Accelerator(mixed_precision=runtime()[1])  # the one precision policy
    if torch.cuda.is_available():  # TF32 for what bf16 autocast leaves in fp32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    set_seed(cfg.seed)
    world = accelerator.num_processes
    micro, accum, batch = plan_batch(cfg.batch, world, cfg.micro_batch)
    if batch != cfg.batch and accelerator.is_main_process:
        warnings.warn(
            f"batch {cfg.batch} does not divide into {world} processes x micro-"
            f"batch {micro}: using {batch} chunks per step ({accum} accumulation "
            "steps)"
        )
    accelerator.gradient_accumulation_steps = accum
    if frozen:
        placed = tuple(place_frozen(accelerator, m) for m in frozen)
        loss_fn = functools.partial(_with_frozen, loss_fn, placed)

    ckpt = last_checkpoint(Path(run_dir))
    state = (
        read_json(ckpt / STATE)
        if ckpt
        else {"step": 0, "log": [], "evals": [], "tokens": 0, "hessian_tokens": 0, "wall_s": 0.0}
    )
    start = state["step"]

    loaders = _loaders(streams, orders, cfg, batch, micro, start)
    optimizer, scheduler = _optimiser(model, cfg, accelerator.device, start)
    model, optimizer, *prepared = accelerator.prepare(model, optimizer, *loaders.values())
    iters = {name: iter(dl) for name, dl in zip(loaders, prepared)}
    if cfg.compile:  # the steps only: evaluation and saving read the model itself
        loss_fn = functools.partial(_on, loss_fn, torch.compile(model, dynamic=True))
    if start:
        accelerator.load_state(str(ckpt))  # tensors only: torch.load(weights_only=True)

    sharded = accelerator.distributed_type == DistributedType.FSDP

    def save(m, path: Path, tokenizer=None):
        save_model(accelerator, model if m is None else m, Path(path), tokenizer)

    def evaluate(step):
        if on_eval is not None:
            t_eval = time.perf_counter()
            model.eval()
            # under FSDP the unwrapped root holds shards: evaluate through the wrapper
            evaluated = model if sharded else accelerator.unwrap_model(model)
            row = {
                "step": step,
                "tokens": state["tokens"],
                **on_eval(evaluated, step, save),
            }
            model.train()
            state["evals"].append(row)
            state["eval_s"] = state.get("eval_s", 0.0) + time.perf_counter() - t_eval

    if start == 0:
        evaluate(0)
    model.train()
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=desc,
        disable=not progress or not accelerator.is_main_process,
        dynamic_ncols=True,
        leave=True,
    )
    status, t0 = "finished", time.perf_counter() - state["wall_s"]
    for step in range(start + 1, cfg.steps + 1):
        step_lr = scheduler.get_last_lr()[0]  # the rate this step's update uses
        step_loss, step_tokens = _optimiser_step(
            accelerator, model, optimizer, scheduler, iters, loss_fn, cfg, accum, step, state
        )
        state["tokens"] += step_tokens
        wall = time.perf_counter() - t0
        state["log"].append(
            {
                "step": step,
                "loss": step_loss,
                "lr": step_lr,
                "tokens": state["tokens"],
                "wall_s": wall,
            }
        )
        bar.update(1)
        bar.set_postfix(
            loss=f"{step_loss:.3f}",
            refresh=False,  # redrawn at the bar's rate
            tok_s=f"{state['tokens'] / max(wall, 1e-9):.0f}",
        )
        if not math.isfinite(step_loss):
            status = "diverged"
            break
        if (eval_every and step % eval_every == 0) or step in eval_steps or step == cfg.steps:
            try:
                evaluate(step)
            except Diverged:
                status = "diverged"
                break
        state["step"], state["wall_s"] = step, time.perf_counter() - t0
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(accelerator, Path(run_dir), state)
    bar.close()
    state["wall_s"] = time.perf_counter() - t0
    accelerator.wait_for_everyone()
    return {
        "status": status,
        "config": asdict(cfg),
        "model": model if sharded else accelerator.unwrap_model(model),
        "sharded": sharded,
        "save": save,
        "batch": batch,
        "is_main_process": accelerator.is_main_process,
        **{
            k: state.get(k, 0)
            for k in ("log", "evals", "tokens", "hessian_tokens", "wall_s", "eval_s")
        },
    }
