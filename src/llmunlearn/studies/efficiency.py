"""The efficiency chapter's logic: what unlearning costs against exact retraining
(:func:`cost_frame`, :func:`cost_ratios`, at the end), and the benchmarks
(``llmunlearn bench``): speed and memory, side by side in one process.

The benchmarks are never part of the tests' pass/fail. Each comparison alternates its two sides over
``repeats`` rounds, so that drift in the machine's load hits both, and reports the best
round of each. What is measured:

- **unlearning step throughput** (tokens/s) of our runner against the same method written
  as a Hugging Face ``Trainer`` subclass (the engine of the official code and of
  open-unlearning): same model, data, batch, optimiser, precision; GA, GA+GD and GA+KL.
  Throughput is read between the first and last optimiser step (warm-up excluded);
- **evaluation throughput** of :func:`llmunlearn.measurement.metrics.perplexity` against a plain
  one-chunk-at-a-time loop with the model's own loss, and the seconds of one **full
  evaluation** (every metric of the privacy and utility chapters);
- **pre-training** tokens/s and achieved FLOP/s (6 N per token) as a fraction of the
  machine's fp32 peak, measured on the spot with a large matmul on the same threads;
- **peak memory** of each (resident set size sampled while it runs on CPU,
  ``max_memory_allocated`` on GPU);
- **where an unlearning run's wall time goes**: loading, training steps, evaluations (a
  fresh run of the profile's budget in a scratch folder that shares the zoo);
- **grid runs per hour**, ours against a pipeline in the paper's way (one process per
  configuration with ``Trainer``, the model saved at each evaluated step, one process per
  saved model that loads and evaluates it) on the same configurations.

The report is one JSON file; its path is the last line printed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import datasets
import pandas as pd
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..config import TENSOR_COLUMNS, Profile
from ..core import nll_loss, trim_padding
from ..data.corpus import chunk_documents, domain_chunks, pretraining_documents
from ..evaluation import evaluate_model, evaluation_row, evaluation_sets
from ..measurement.metrics import perplexity
from ..models import build_model, load_model, n_params, runtime
from ..runs import Run, home, provenance, use_home, write_json
from ..training.loop import TrainConfig, train, training_flops
from ..training.pretraining import load_original, load_reference, pretrain, pretraining_tokenizer
from ..unlearning.methods import get_method, resolve_hparams
from ..unlearning.runner import eval_points, unlearn, unlearning_inputs, unlearning_run
from .plan import DEVICES, plan

BENCH_METHODS = ("ga", "ga_gd_in", "ga_kl_in")


@contextlib.contextmanager
def peak_memory(out: dict):
    """Record in ``out["peak_mb"]`` the peak memory while the block runs: on a GPU,
    ``torch.cuda.max_memory_allocated``; on CPU, the resident set size sampled every
    5 ms (``ru_maxrss`` only ever grows over the whole process, so it cannot tell
    one measurement from the next)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        yield
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["memory"] = "cuda max_memory_allocated"
        return
    page = os.sysconf("SC_PAGE_SIZE")
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            with open("/proc/self/statm") as f:
                peak[0] = max(peak[0], int(f.read().split()[1]) * page)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        out["peak_mb"] = peak[0] / 2**20
        out["memory"] = "peak resident set size"


def _rate(measured: dict) -> float:
    return measured["tokens_per_s"]


def _steady_rate(times: list[float], tokens: list[int]) -> float:
    """Tokens per second between the first and the last step (the first step, with its
    one-off costs, only starts the clock)."""
    if len(times) < 2:
        raise ValueError("need at least two steps to measure a steady rate")
    return (tokens[-1] - tokens[0]) / (times[-1] - times[0])


def _setup(profile: Profile, original, domain: str, method: str):
    """What both engines start from: the original model, the method, its data streams,
    the frozen reference model (if the method reads one) and its hyper-parameters."""

    model, tokenizer = load_original(original)
    spec = get_method(method)
    chunks, general = domain_chunks(profile, domain, tokenizer)
    streams = {"forget": chunks["forget"]}
    if spec.retain is not None:
        streams["retain"] = chunks["retain"] if spec.retain == "in" else general["retain"]
    ref = load_reference(original) if spec.needs_reference else None
    return model, spec, streams, ref, resolve_hparams(spec, None)


def ours_unlearn(profile, original, domain, method, steps) -> dict:
    """Our runner (:func:`llmunlearn.training.loop.train`) on ``method`` for ``steps`` steps."""

    model, spec, streams, ref, hp = _setup(profile, original, domain, method)
    cfg = TrainConfig(
        steps=steps,
        lr=profile.unlearn_lr,
        batch=profile.unlearn_batch,
        micro_batch=profile.unlearn_batch,
        seed=profile.seed,
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp, peak_memory(out):
        res = train(
            model,
            lambda m, b, ref=None: spec.loss(m, b, ref, hp),
            streams,
            cfg,
            Path(tmp),
            frozen=(ref,) if ref is not None else (),
            progress=False,
        )
    log = res["log"]
    out["tokens_per_s"] = _steady_rate([r["wall_s"] for r in log], [r["tokens"] for r in log])
    return out


def _trainer_parts(rows: dict, n: int, spec, ref, hp):
    """The method as a ``Trainer`` sees it: a dataset whose item i is chunk i of every
    stream (``rows``, torch-formatted), its collate function, and a ``Trainer`` subclass
    whose ``compute_loss`` is the method's loss."""

    class Paired(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {name: ds[i % len(ds)] for name, ds in rows.items()}

    def collate(items):
        return {
            name: {k: torch.stack([it[name][k] for it in items]) for k in TENSOR_COLUMNS}
            for name in rows
        }

    class MethodTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = spec.loss(model, inputs, ref, hp)
            return (loss, None) if return_outputs else loss

    return Paired(), collate, MethodTrainer


def trainer_unlearn(profile, original, domain, method, steps) -> dict:
    """The same method as a ``transformers.Trainer`` subclass whose ``compute_loss`` is
    the method's loss, on the same chunks in the same batch."""

    model, spec, streams, ref, hp = _setup(profile, original, domain, method)
    n = steps * profile.unlearn_batch
    rows = {name: ds.with_format("torch", columns=TENSOR_COLUMNS) for name, ds in streams.items()}

    dataset, collate, MethodTrainer = _trainer_parts(rows, n, spec, ref, hp)

    stamps = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    out = {}
    with tempfile.TemporaryDirectory() as tmp, peak_memory(out):
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=profile.unlearn_batch,
            max_steps=steps,
            learning_rate=profile.unlearn_lr,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, round(0.03 * steps)),
            max_grad_norm=1.0,
            weight_decay=0.0,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            seed=profile.seed,
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            bf16=torch.cuda.is_available(),
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = MethodTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=collate,
            callbacks=[Stamp()],
        )
        if ref is not None:
            ref.to(trainer.args.device)
        trainer.train()
    # tokens per step: the streams' mean real tokens per chunk (the Trainer's sampler
    # draws chunks at random), times the chunks of one step
    tokens_per_step = profile.unlearn_batch * sum(
        sum(map(sum, ds.with_format(None)["attention_mask"])) / len(ds) for ds in streams.values()
    )
    out["tokens_per_s"] = tokens_per_step * (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return out


def eval_throughput(profile, original, domain) -> dict:
    """Our batched :func:`~llmunlearn.measurement.metrics.perplexity` against a one-chunk loop, on
    the domain's evaluation sets."""

    model, tokenizer = load_original(original)
    model.eval()
    sets = evaluation_sets(
        profile.unlearning, profile.seed, *domain_chunks(profile, domain, tokenizer)
    )
    tokens = sum(sum(map(sum, c.with_format(None)["attention_mask"])) for c in sets.values())

    def ours():
        for c in sets.values():
            perplexity(model, c)

    def plain():
        with torch.no_grad():
            for c in sets.values():
                for row in c.with_format("torch", columns=TENSOR_COLUMNS):
                    model(**{k: v[None] for k, v in row.items()}).loss.item()

    out = {"tokens": tokens}
    for name, fn in (("ours", ours), ("one_chunk_loop", plain)):
        rec = {}
        with peak_memory(rec):
            t0 = time.perf_counter()
            fn()
            rec["tokens_per_s"] = tokens / (time.perf_counter() - t0)
        out[name] = rec
    return out


def full_evaluation(profile, original, domain) -> dict:
    """Seconds of one full evaluation (:func:`llmunlearn.evaluation.evaluate_model`: every
    metric of the privacy and utility chapters) of the original model, with the original
    as both references: the first call computes the references' statistics, the second
    reads them from the process's cache, as every later model of a domain does."""

    model, tokenizer = load_original(original)
    model.eval()
    ref, _ = load_original(original)
    ref.eval()
    sets = evaluation_sets(
        profile.unlearning, profile.seed, *domain_chunks(profile, domain, tokenizer)
    )
    out = {}
    for name in ("first_model_s", "later_model_s"):
        t0 = time.perf_counter()
        evaluate_model(model, tokenizer, sets, {"retrained": ref, "original": ref}, profile=profile)
        out[name] = time.perf_counter() - t0
    return out


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """The fp32 FLOP/s of a large square matmul on ``threads`` threads (best of
    ``repeats``): the practical peak that training is compared with."""
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    a @ b  # warm-up
    best = 0.0
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def pretrain_throughput(profile, steps: int) -> dict:
    """Pre-training tokens/s of a fresh model of the profile on the pre-training chunks,
    and its FLOP/s by the 6 N rule."""

    tokenizer = pretraining_tokenizer(profile)
    train_set = chunk_documents(tokenizer, pretraining_documents(profile), profile.chunk_len)
    model = build_model(profile.model, len(tokenizer), profile.seed)
    cfg = TrainConfig(
        steps=steps,
        lr=profile.pretrain_lr,
        batch=profile.pretrain_batch,
        micro_batch=profile.pretrain_batch,
        warmup_ratio=0.05,
        seed=profile.seed,
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp, peak_memory(out):
        res = train(
            model,
            lambda m, b: nll_loss(m, b["train"]),
            {"train": train_set},
            cfg,
            Path(tmp),
            progress=False,
        )
    log = res["log"]
    out["tokens_per_s"] = _steady_rate([r["wall_s"] for r in log], [r["tokens"] for r in log])
    out["flops_per_s"] = 6 * n_params(model) * out["tokens_per_s"]
    return out


def bare_pretrain_throughput(profile, steps: int) -> dict:
    """The floor :func:`pretrain_throughput` is compared with: a plain PyTorch loop
    (forward, backward, clipping, AdamW; no accelerate, no schedule, no logging) on the
    same chunks in random batches, each trimmed to its longest chunk as ours are. What
    separates its FLOP/s from the matmul peak is the model's and the data's shape (small
    matrices, padding, the vocabulary's softmax), not our loop."""

    tokenizer = pretraining_tokenizer(profile)
    chunks = chunk_documents(tokenizer, pretraining_documents(profile), profile.chunk_len)
    rows = chunks.with_format("torch", columns=TENSOR_COLUMNS)
    model = build_model(profile.model, len(tokenizer), profile.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=profile.pretrain_lr)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(profile.seed))
    batch, times, tokens = profile.pretrain_batch, [], [0]
    for step in range(steps):
        picked = order[(step * batch) % len(rows) :][:batch]
        b = trim_padding(rows[picked])
        nll_loss(model, b).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        tokens.append(tokens[-1] + int(b["attention_mask"].sum()))
        times.append(time.perf_counter())
    rate = _steady_rate(times, tokens[1:])
    return {"tokens_per_s": rate, "flops_per_s": 6 * n_params(model) * rate}


def unlearning_breakdown(profile, domain: str, method: str = "ga") -> dict:
    """A fresh unlearning run at the profile's budget, in a scratch home that links the
    real zoo and data (nothing is recomputed but the run): where its time goes."""

    with _scratch_home():
        t0 = time.perf_counter()
        run = unlearn(profile, domain, method, progress=False)
        total = time.perf_counter() - t0
        timing = run.summary["timing"]
    reference = total - timing["load_s"] - timing["train_s"] - timing["eval_s"]
    return {
        "method": method,
        "total_s": total,
        **timing,
        "step_0_reference_and_saving_s": reference,
        "share": {
            k: v / total
            for k, v in (
                ("load", timing["load_s"]),
                ("training steps", timing["train_s"]),
                ("evaluations", timing["eval_s"]),
                ("step 0, saving, rest", reference),
            )
        },
    }


@contextlib.contextmanager
def _scratch_home():
    """A fresh home that links the real one's zoo and data: a run there is computed
    again, nothing else is."""

    real = home()
    with tempfile.TemporaryDirectory() as tmp, use_home(tmp) as scratch:
        for sub in ("sources", "data", "tokenizer", "pretrain", "downloads", "evaluate"):
            if (real / sub).exists():
                os.symlink(real / sub, scratch / sub)
        yield scratch


def _paper_style_inputs(work: Path, args: dict):
    """What a paper-style process reads, prepared once by the parent: the profile, and a
    loader of the datasets it saved on disk (``load("streams")``, ``load("evaluation")``)."""

    profile = pickle.loads(base64.b64decode(args["profile"]))
    torch.set_num_threads(profile.threads)

    def load(sub):
        return {d.name: datasets.load_from_disk(str(d)) for d in sorted((work / sub).iterdir())}

    return profile, load


def paper_style_train(args: dict) -> None:
    """One configuration the paper's way, in a process of its own: the method as a
    ``Trainer`` subclass at the grid's schedule, the model saved at each evaluated step."""

    work = Path(args["work"])
    profile, load = _paper_style_inputs(work, args)
    spec = get_method(args["method"])
    model, tokenizer = load_model(args["original"])
    ref = None
    if spec.needs_reference:
        ref, _ = load_model(args["original"])
        ref.eval().requires_grad_(False)
    hp = resolve_hparams(spec, None)
    rows = {n: ds.with_format("torch", columns=TENSOR_COLUMNS) for n, ds in load("streams").items()}
    n, saves = args["steps"] * profile.unlearn_batch, set(args["eval_steps"])

    dataset, collate, MethodTrainer = _trainer_parts(rows, n, spec, ref, hp)

    class SaveAt(TrainerCallback):  # checkpoints where the grid evaluates
        def on_step_end(self, targs, state, control, **kw):
            control.should_save = state.global_step in saves

    targs = TrainingArguments(
        output_dir=str(work / "checkpoints"),
        per_device_train_batch_size=profile.unlearn_batch,
        max_steps=args["steps"],
        learning_rate=args["lr"],
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=max(1, round(0.03 * args["steps"])),
        max_grad_norm=1.0,
        weight_decay=0.0,
        logging_strategy="no",
        save_strategy="steps",
        save_steps=10**9,  # only where SaveAt says
        save_only_model=True,
        report_to=[],
        seed=profile.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
    )
    MethodTrainer(
        model=model,
        args=targs,
        train_dataset=dataset,
        data_collator=collate,
        callbacks=[SaveAt()],
        processing_class=tokenizer,  # saved with each checkpoint, as loading needs it
    ).train()


def paper_style_evaluate(args: dict) -> None:
    """The paper's separate evaluation: a process that loads one saved checkpoint and
    measures it on the grid's evaluation sets."""

    work = Path(args["work"])
    profile, load = _paper_style_inputs(work, args)
    model, _ = load_model(args["folder"])
    evaluation_row(model.eval(), load("evaluation"), profile.seed)


def _in_process_of_its_own(function: str, args: dict) -> None:

    code = (
        f"import json, sys; from llmunlearn.studies.efficiency import {function} as f; "
        "f(json.loads(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, json.dumps(args)], check=True, env=os.environ)


def grid_throughput(profile: Profile, domain: str, configs: list[tuple[str, float]]) -> dict:
    """Grid runs per hour, ours against the paper's pipeline, on the same configurations
    (method, lr) at the grid's budget: ours is :func:`~llmunlearn.unlearning.runner.unlearning_run`
    of a grid cell (no weights kept, evaluated in the loop at the grid's steps, the original's
    step 0 cached); the paper's is one process per configuration that trains with
    ``Trainer`` and saves the model at each of those steps, then one process per saved
    model that loads and evaluates it on the same sets (data prepared once, on disk; the
    processes' start-up is part of what that pipeline costs)."""

    steps = profile.unlearn_steps
    points = eval_points(profile.unlearning, steps)
    original = pretrain(profile, progress=False)
    _, tokenizer = load_original(original)
    chunks, general = domain_chunks(profile, domain, tokenizer)
    sets = evaluation_sets(profile.unlearning, profile.seed, chunks, general)
    blob = base64.b64encode(pickle.dumps(profile)).decode()
    ours, paper, evaluated = [], [], []
    with _scratch_home():
        inputs = unlearning_inputs(profile, domain, original)  # once, as the grid does
        for method, lr in configs:
            t0 = time.perf_counter()
            unlearning_run(inputs, method, lr=lr, keep_model=False, progress=False)
            ours.append(time.perf_counter() - t0)
            spec = get_method(method)
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                streams = {"forget": chunks["forget"]}
                if spec.retain is not None:
                    streams["retain"] = (
                        chunks["retain"] if spec.retain == "in" else general["retain"]
                    )
                for sub, dss in (("streams", streams), ("evaluation", sets)):
                    for name, ds in dss.items():
                        ds.save_to_disk(str(work / sub / name))
                common = {"work": tmp, "profile": blob, "original": str(original.path / "model")}
                t0 = time.perf_counter()
                _in_process_of_its_own(
                    "paper_style_train",
                    {
                        **common,
                        "method": method,
                        "lr": lr,
                        "steps": steps,
                        "eval_steps": list(points),
                    },
                )
                saved = sorted((work / "checkpoints").glob("checkpoint-*"))
                for ckpt in saved:
                    _in_process_of_its_own("paper_style_evaluate", {**common, "folder": str(ckpt)})
                paper.append(time.perf_counter() - t0)
                evaluated.append(sorted(int(c.name.split("-")[1]) for c in saved))
    return {
        "configs": [list(c) for c in configs],
        "eval_steps": list(points),
        "ours_s": ours,
        "paper_style_s": paper,
        "paper_style_evaluated_steps": evaluated,
        "ours_runs_per_hour": 3600 * len(ours) / sum(ours),
        "paper_style_runs_per_hour": 3600 * len(paper) / sum(paper),
        "ratio": sum(paper) / sum(ours),
    }


def _bench_unlearning(profile, original, domain, steps, repeats, say) -> dict:
    """Our runner against the ``Trainer`` on each of :data:`BENCH_METHODS`, alternately
    (``repeats`` rounds; the best of each side counts)."""
    out = {}
    for method in BENCH_METHODS:
        rounds = {"ours": [], "trainer": []}
        for _ in range(repeats):
            rounds["ours"].append(ours_unlearn(profile, original, domain, method, steps))
            rounds["trainer"].append(trainer_unlearn(profile, original, domain, method, steps))
        best = {k: max(r["tokens_per_s"] for r in v) for k, v in rounds.items()}
        out[method] = {
            "rounds": rounds,
            "ours_tokens_per_s": best["ours"],
            "trainer_tokens_per_s": best["trainer"],
            "ratio": best["ours"] / best["trainer"],
            "ours_peak_mb": max(r["peak_mb"] for r in rounds["ours"]),
            "trainer_peak_mb": max(r["peak_mb"] for r in rounds["trainer"]),
        }
        say(
            f"unlearning {method:<9} ours {best['ours']:,.0f} tok/s, Trainer "
            f"{best['trainer']:,.0f} tok/s: {best['ours'] / best['trainer']:.2f}x"
        )
    return out


def _bench_evaluation(profile, original, domain, repeats, say) -> dict:
    """The batched evaluator against a one-chunk loop, and one full evaluation's seconds."""
    rounds = [eval_throughput(profile, original, domain) for _ in range(repeats)]
    best = {k: max(r[k]["tokens_per_s"] for r in rounds) for k in ("ours", "one_chunk_loop")}
    out = {
        "evaluation": {
            "rounds": rounds,
            "ratio": best["ours"] / best["one_chunk_loop"],
            **{f"{k}_tokens_per_s": v for k, v in best.items()},
        }
    }
    say(
        f"evaluation ours {best['ours']:,.0f} tok/s, one-chunk loop "
        f"{best['one_chunk_loop']:,.0f} tok/s: {out['evaluation']['ratio']:.2f}x"
    )
    out["full_evaluation"] = min(
        (full_evaluation(profile, original, domain) for _ in range(repeats)),
        key=lambda r: r["later_model_s"],
    )
    say(
        f"full evaluation of one model: {out['full_evaluation']['first_model_s']:.1f} s "
        f"(first of a domain), {out['full_evaluation']['later_model_s']:.1f} s (later)"
    )
    return out


def _bench_pretraining(profile, steps, repeats, say) -> dict:
    """Pre-training's FLOP/s against the measured matmul peak and a plain PyTorch loop."""
    peak = matmul_peak(profile.threads)
    pre = max((pretrain_throughput(profile, steps) for _ in range(repeats)), key=_rate)
    bare = max((bare_pretrain_throughput(profile, steps) for _ in range(repeats)), key=_rate)
    say(
        f"pre-training {pre['tokens_per_s']:,.0f} tok/s = {pre['flops_per_s'] / 1e9:.1f} "
        f"GFLOP/s, {pre['flops_per_s'] / peak:.0%} of the measured fp32 peak "
        f"({peak / 1e9:.1f} GFLOP/s); a plain PyTorch loop on the same chunks "
        f"{bare['tokens_per_s']:,.0f} tok/s ({pre['tokens_per_s'] / bare['tokens_per_s']:.2f}x)"
    )
    return {
        **pre,
        "matmul_peak_flops_per_s": peak,
        "fraction_of_peak": pre["flops_per_s"] / peak,
        "bare_loop_tokens_per_s": bare["tokens_per_s"],
        "ratio_to_bare_loop": pre["tokens_per_s"] / bare["tokens_per_s"],
    }


def _bench_grid(profile, domain, say) -> dict:
    """Grid runs per hour: ours against a pipeline in the paper's way (GA and GA + GD at
    the first two grid learning rates)."""
    configs = [
        (m, lr)
        for m in ("ga", "ga_gd_in")
        for lr in (profile.grid_lrs or (profile.unlearn_lr,))[:2]
    ]
    grid = grid_throughput(profile, domain, configs)
    say(
        f"grid runs per hour: ours {grid['ours_runs_per_hour']:,.0f}, the paper's "
        f"pipeline {grid['paper_style_runs_per_hour']:,.0f}: {grid['ratio']:.2f}x"
    )
    return grid


def run_bench(
    profile: Profile, domain: str = "github", steps: int = 20, repeats: int = 2, say=print
) -> Path:
    """Every benchmark above; returns the path of the JSON report."""

    torch.set_num_threads(profile.threads)
    original = pretrain(profile)
    report = {
        "profile": profile.name,
        "domain": domain,
        "steps": steps,
        "repeats": repeats,
        "threads": profile.threads,
        "device": "cuda" if torch.cuda.is_available() else f"cpu x {profile.threads} threads",
    }
    report["unlearning"] = _bench_unlearning(profile, original, domain, steps, repeats, say)
    report.update(_bench_evaluation(profile, original, domain, repeats, say))
    report["pretraining"] = _bench_pretraining(profile, steps, repeats, say)
    report["breakdown"] = unlearning_breakdown(profile, domain)
    say(
        "an unlearning run's wall time: "
        + ", ".join(f"{k} {v:.0%}" for k, v in report["breakdown"]["share"].items())
    )
    report["grid"] = _bench_grid(profile, domain, say)
    report["provenance"] = provenance()
    path = home() / "bench" / f"bench-{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, report)
    return path


# ------------------------------------------------- cost of unlearning and retraining --
def cost_frame(zoo: dict[str, Run], runs: dict[str, dict[str, Run]]) -> pd.DataFrame:
    """One row per pre-training run and per unlearning run (``runs[domain][method]``):
    kind, name, domain, tokens, FLOPs, wall time."""
    rows = [
        {
            "kind": "pre-training",
            "name": name,
            "domain": None,
            **{k: run.summary[k] for k in ("tokens", "flops", "wall_s")},
        }
        for name, run in zoo.items()
    ]
    rows += [
        {
            "kind": "unlearning",
            "name": method,
            "domain": domain,
            **{k: run.summary[k] for k in ("tokens", "flops", "wall_s")},
        }
        for domain, methods in runs.items()
        for method, run in methods.items()
    ]
    return pd.DataFrame(rows)


def cost_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """Per domain and method: exact retraining's cost over the unlearning run's, in FLOPs
    and in wall time."""
    pre = costs[costs["kind"] == "pre-training"].set_index("name")
    out = costs[costs["kind"] == "unlearning"].copy()
    retrain = "retrained-" + out["domain"]
    out["FLOPs ratio"] = pre.loc[retrain, "flops"].to_numpy() / out["flops"].to_numpy()
    out["wall-time ratio"] = pre.loc[retrain, "wall_s"].to_numpy() / out["wall_s"].to_numpy()
    return out.set_index(["domain", "name"])[["FLOPs ratio", "wall-time ratio"]]


def synthetic_chunks(profile: Profile, n: int, seed: int):
    """``n`` chunks of ``chunk_len`` uniformly random token ids (no padding): what the
    device check trains on, since throughput does not depend on the text and a device
    machine may have no data (nor the network to fetch it)."""

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, profile.vocab_size, (n, profile.chunk_len), generator=g)
    return datasets.Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": [[1] * profile.chunk_len] * n,
            "labels": ids.tolist(),
        }
    )


def _device_slice(profile, model, name, streams, loss, sizes, reference: bool, peak: float):
    """One slice of the device check through the loop: ``(row, trained model)``, the row
    with tokens/s, FLOP/s by the runner's rule, MFU against ``peak``, wall time and peak
    memory. ``reference``: GA + KL on in-distribution data with a frozen copy of a fresh
    model (in the compute dtype, as the runner holds the original)."""
    batch, lr, steps = sizes
    ref = None
    if reference:
        spec = get_method("ga_kl_in")
        hp = resolve_hparams(spec, None)
        ref = build_model(profile.model, profile.vocab_size, profile.seed).eval()
        ref = ref.to(torch.bfloat16 if runtime()[1] == "bf16" else torch.float32)
        ref.requires_grad_(False)
        loss = lambda m, b, ref: spec.loss(m, b, ref, hp)  # noqa: E731
    cfg = TrainConfig(
        steps=steps,
        lr=lr,
        batch=batch,
        micro_batch=min(batch, profile.unlearn_micro_batch) if reference else batch,
        seed=profile.seed,
        compile=profile.compile,
    )
    row: dict = {}
    with tempfile.TemporaryDirectory() as tmp, peak_memory(row):
        res = train(
            model,
            loss,
            streams,
            cfg,
            Path(tmp),
            frozen=(ref,) if ref is not None else (),
            desc=f"device check: {name}",
        )
    log = res["log"]
    tps = _steady_rate([r["wall_s"] for r in log], [r["tokens"] for r in log])
    per_token = training_flops(n_params(model), 1, reference_tokens=int(reference))
    row.update(
        {
            "tokens_per_s": tps,
            "flops_per_s": per_token * tps,
            "mfu": per_token * tps / peak,
            "wall_s": res["wall_s"],
        }
    )
    return row, res["model"]


def _planned_hours(profile: Profile, device: str, out: dict) -> dict:
    """The profile's plan at the device check's measured utilisations (pre-training
    stages at the pre-training slice's, the others at the grid slice's) and at 30 %."""
    frame = plan(profile, device, utilisation=1.0)
    stages = frame.drop(index=[i for i in frame.index if i.startswith("book")], errors="ignore")
    at = {
        s: out["pre-training"]["mfu"]
        if s.startswith("pre-training")
        else out["grid (ga_kl_in)"]["mfu"]
        for s in stages.index
    }
    return {
        "book hours": float(sum(stages.loc[s, "hours"] / max(at[s], 1e-9) for s in stages.index)),
        # hours go as 1 / utilisation: the plan at full use, read at 30 %
        "plan at 30 %": float(frame.loc["book (stages above)", "hours"] / 0.3),
    }


def device_check(profile: Profile, steps: int = 30, device: str = "H100") -> dict:
    """The device check (``llmunlearn gpu-check``; ``make gpu-check``): on this machine's
    runtime device (:func:`~llmunlearn.models.runtime`), in the training precision, a slice
    of pre-training (a fresh model of the profile, ``steps`` steps of ``pretrain_batch``
    chunks) and a slice of the grid (GA + KL on in-distribution data: two streams and a
    frozen reference, the grid's heaviest paper method; ``steps`` steps of
    ``unlearn_batch`` chunks per stream), both through the book's one training loop on
    :func:`synthetic_chunks`. For each: tokens/s (steady, first step excluded), FLOP/s by
    the runner's rule, MFU against ``device``'s dense peak (:data:`~.plan.DEVICES`; on a
    CPU, the measured fp32 matmul peak) and peak memory. ``book hours``: the profile's
    plan (:func:`~.plan.plan`) at the measured utilisations (pre-training stages at the
    pre-training slice's, the others at the grid slice's)."""

    here, precision = runtime()
    peak = DEVICES[device] if here.type == "cuda" else matmul_peak(profile.threads)
    torch.set_num_threads(profile.threads)
    out = {
        "device": torch.cuda.get_device_name() if here.type == "cuda" else "cpu",
        "precision": precision,
        "peak_flops": peak,
        "profile": profile.name,
    }
    model = build_model(profile.model, profile.vocab_size, profile.seed)
    n = n_params(model)
    out["n_params"] = n
    slices = {
        "pre-training": (
            {"train": synthetic_chunks(profile, steps * profile.pretrain_batch, 0)},
            lambda m, b: nll_loss(m, b["train"]),
            profile.pretrain_batch,
            profile.pretrain_lr,
            False,
        ),
        "grid (ga_kl_in)": (
            {
                s: synthetic_chunks(profile, steps * profile.unlearn_batch, i + 1)
                for i, s in enumerate(("forget", "retain"))
            },
            None,
            profile.unlearn_batch,
            profile.unlearn_lr,
            True,
        ),
    }
    for name, (streams, loss, batch, lr, reference) in slices.items():
        out[name], model = _device_slice(
            profile, model, name, streams, loss, (batch, lr, steps), reference, peak
        )
    out.update(_planned_hours(profile, device, out))
    return out
