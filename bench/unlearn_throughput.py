"""Benchmark: the unlearning runner's step throughput against the same method written as a
Hugging Face ``Trainer`` subclass (the approach of the official code and open-unlearning).

Same model (the profile's original model), same forget chunks, same batch, gradient ascent,
AdamW, fp32 on CPU (bf16 on GPU). Each side runs ``--steps`` optimiser steps after a
warm-up and reports steps/s, tokens/s and peak memory. Not a test: it measures, it asserts
nothing. Usage: python bench/unlearn_throughput.py --profile cpu --steps 20
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time

import torch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(profile, model, forget, steps):
    from llmunlearn.core import nll_loss
    from llmunlearn.train import TrainConfig, train

    cfg = TrainConfig(steps=steps, lr=profile.unlearn_lr, batch=profile.unlearn_batch,
                      micro_batch=profile.unlearn_batch, seed=profile.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train(model, lambda m, b: -nll_loss(m, b["forget"]), {"forget": forget}, cfg,
                    tmp, progress=False)
        wall = time.perf_counter() - t0
    return wall, res["tokens"]


def hf_trainer(profile, model, forget, steps):
    from transformers import Trainer, TrainingArguments

    class GradientAscentTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model(**inputs)
            return (-out.loss, out) if return_outputs else -out.loss

    ds = forget.with_format("torch", columns=["input_ids", "attention_mask", "labels"])
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=profile.unlearn_batch, max_steps=steps,
            learning_rate=profile.unlearn_lr, lr_scheduler_type="cosine",
            warmup_steps=max(1, round(0.03 * steps)),
            max_grad_norm=1.0, weight_decay=0.0, logging_strategy="no", save_strategy="no",
            report_to=[], seed=profile.seed, disable_tqdm=True, dataloader_num_workers=0,
            bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available())
        trainer = GradientAscentTrainer(model=model, args=args, train_dataset=ds)
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
    tokens = steps * profile.unlearn_batch * int(ds[0]["attention_mask"].sum())
    return wall, tokens


def main(argv=None):
    import llmunlearn as ul
    from llmunlearn.data import chunk_documents, load_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--domain", default="github")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    profile = ul.get_profile(args.profile)
    torch.set_num_threads(profile.threads)
    original = ul.pretrain(profile)
    _, tokenizer = ul.load_original(original)
    forget = chunk_documents(tokenizer, load_splits(args.domain, profile)["forget"],
                             profile.chunk_len)
    results = {"ours": [], "hf_trainer": []}
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both sides
        for name, fn in (("ours", ours), ("hf_trainer", hf_trainer)):
            model, _ = ul.load_original(original)
            wall, tokens = fn(profile, model, forget, args.steps)
            results[name].append({"wall_s": wall, "steps_per_s": args.steps / wall,
                                  "tokens_per_s": tokens / wall})
    best = {k: max(r["steps_per_s"] for r in v) for k, v in results.items()}
    summary = {"profile": args.profile, "steps": args.steps, "batch": profile.unlearn_batch,
               "runs": results, "best_steps_per_s": best,
               "speed-up (ours / Trainer)": best["ours"] / best["hf_trainer"],
               "peak_rss_mb": peak_rss_mb(), "device": "cuda" if torch.cuda.is_available()
               else f"cpu x {profile.threads} threads"}
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
