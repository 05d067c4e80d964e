"""Pre-train the original model on D = forget + retain, with the one training loop.

The tokenizer is trained on D only (never on approximate text), so held-out data stays
unseen in every sense. The run directory holds the model in Hugging Face format
(``model/``: safetensors, config, tokenizer), the loss curve and perplexity on every split.
"""

from __future__ import annotations

import dataclasses

from .config import SPLITS, Profile
from .core import nll_loss
from .data import chunk_documents, load_splits
from .metrics import perplexity
from .models import build_model, load_model, n_params, train_tokenizer
from .runs import Run
from .train import TrainConfig, train


def pretrain(profile: Profile, *, domains=("github",), seed: int | None = None,
             progress: bool = True) -> Run:
    """Pre-train (or reuse) the original model for ``profile``; returns its :class:`Run`.

    ``summary.json`` holds ``ppl[domain][split]``, ``n_params``, ``tokens``, ``flops``
    (6 x parameters x trained tokens) and ``wall_s``.
    """
    import torch

    seed = profile.seed if seed is None else seed
    splits = {d: load_splits(d, profile) for d in domains}
    config = {"profile": dataclasses.asdict(profile), "domains": list(domains), "seed": seed,
              "docs": {d: {s: [x.sha256 for x in splits[d][s]] for s in SPLITS}
                       for d in domains}}
    run = Run.create("pretrain", f"{profile.name}-original-s{seed}", config)
    if run.done:
        return run

    torch.set_num_threads(profile.threads)
    train_docs = [doc for d in domains for s in ("forget", "retain") for doc in splits[d][s]]
    tokenizer = train_tokenizer([d.text for d in train_docs], profile.vocab_size)
    model = build_model(profile, len(tokenizer), seed)
    chunks = {d: {s: chunk_documents(tokenizer, splits[d][s], profile.chunk_len)
                  for s in SPLITS} for d in domains}
    import datasets
    train_set = datasets.concatenate_datasets(
        [chunks[d][s] for d in domains for s in ("forget", "retain")])
    steps = max(1, profile.pretrain_epochs * len(train_set) // profile.pretrain_batch)
    cfg = TrainConfig(steps=steps, lr=profile.pretrain_lr, batch=profile.pretrain_batch,
                      warmup_ratio=0.05, weight_decay=0.1, seed=seed,
                      checkpoint_every=max(1, steps // 5))
    result = train(model, lambda m, b: nll_loss(m, b["train"]), {"train": train_set}, cfg,
                   run.path, desc=f"pre-train {profile.name}", progress=progress)
    if result["status"] != "finished":
        raise RuntimeError(f"pre-training diverged at step {len(result['log'])}; "
                           f"lower pretrain_lr (was {profile.pretrain_lr})")
    model = result["model"].eval()
    model.save_pretrained(run.path / "model")
    tokenizer.save_pretrained(run.path / "model")
    ppl = {d: {s: perplexity(model, chunks[d][s])["ppl"] for s in SPLITS} for d in domains}
    run.finish({"ppl": ppl, "n_params": n_params(model), "tokens": result["tokens"],
                "flops": 6 * n_params(model) * result["tokens"], "wall_s": result["wall_s"],
                "steps": steps, "log": result["log"],
                "n_chunks": {d: {s: len(chunks[d][s]) for s in SPLITS} for d in domains}})
    return run


def load_original(run: Run):
    """The pre-trained model and tokenizer of a finished pre-training run."""
    return load_model(run.path / "model")
