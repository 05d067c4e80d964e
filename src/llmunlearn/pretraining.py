"""Pre-train the original model on D, with the one training loop.

D = every domain's forget and retain documents plus general/retain; approximate and
general/evaluation are never trained on.

The tokenizer is trained on D only (never on approximate text), so held-out data stays
unseen in every sense. The run directory holds the model in Hugging Face format
(``model/``: safetensors, config, tokenizer), the loss curve and perplexity on every split.
"""

from __future__ import annotations

import dataclasses

from .config import DOMAINS, Profile
from .core import nll_loss
from .data import ALL_DOMAINS, chunk_documents, load_splits
from .metrics import perplexity
from .models import build_model, load_model, n_params, train_tokenizer
from .runs import Run
from .train import TrainConfig, train


def pretraining_documents(splits: dict) -> list:
    """D: every domain's forget and retain documents, plus general/retain."""
    return [doc for d in DOMAINS for s in ("forget", "retain") for doc in splits[d][s]] + \
        splits["general"]["retain"]


def pretrain(profile: Profile, *, seed: int | None = None, progress: bool = True) -> Run:
    """Pre-train (or reuse) the original model for ``profile``; returns its :class:`Run`.

    ``summary.json`` holds ``ppl[domain][split]`` for every domain (and general),
    ``n_params``, ``tokens``, ``flops`` (6 x parameters x trained tokens), ``wall_s`` and
    the loss curve ``log``.
    """
    import datasets
    import torch

    seed = profile.seed if seed is None else seed
    splits = {d: load_splits(d, profile) for d in ALL_DOMAINS}
    config = {"profile": dataclasses.asdict(profile), "seed": seed,
              "docs": {d: {s: [x.sha256 for x in v] for s, v in sp.items()}
                       for d, sp in splits.items()}}
    run = Run.create("pretrain", f"{profile.name}-original-s{seed}", config)
    if run.done:
        return run

    torch.set_num_threads(profile.threads)
    train_docs = pretraining_documents(splits)
    tokenizer = train_tokenizer([d.text for d in train_docs], profile.vocab_size)
    model = build_model(profile, len(tokenizer), seed)
    train_set = chunk_documents(tokenizer, train_docs, profile.chunk_len)
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
    chunks = {d: {s: chunk_documents(tokenizer, v, profile.chunk_len) for s, v in sp.items()}
              for d, sp in splits.items()}
    run.finish({
        "ppl": {d: {s: perplexity(model, c)["ppl"] for s, c in cs.items()}
                for d, cs in chunks.items()},
        "n_chunks": {d: {s: len(c) for s, c in cs.items()} for d, cs in chunks.items()},
        "n_params": n_params(model), "tokens": result["tokens"],
        "flops": 6 * n_params(model) * result["tokens"], "wall_s": result["wall_s"],
        "steps": steps, "log": result["log"]})
    return run


def load_original(run: Run):
    """The pre-trained model and tokenizer of a finished pre-training run."""
    return load_model(run.path / "model")
