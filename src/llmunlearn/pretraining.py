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

from pathlib import Path

from .config import DOMAINS, Profile, check_choice, pretrain_config
from .core import nll_loss
from .data import (
    ALL_DOMAINS,
    chunk_documents,
    domain_splits,
    forget_documents,
    pretraining_documents,
    tokenizer_documents,
)
from .metrics import perplexity
from .models import build_model, check_checkpoint, load_model, n_params, train_tokenizer
from .runs import Run, home, write_json
from .train import TrainConfig, stream_order, train, training_flops


def pretraining_tokenizer(profile: Profile):
    """The byte-level BPE of ``profile``, trained on D minus every forget set (cached)."""
    from transformers import PreTrainedTokenizerFast

    docs = tokenizer_documents(profile)
    run = Run.create(
        "tokenizer",
        profile.name,
        {"vocab_size": profile.vocab_size, "docs": sorted(d.sha256 for d in docs)},
    )
    if not run.done:
        train_tokenizer([d.text for d in docs], profile.vocab_size).save_pretrained(run.path)
        run.finish({"vocab_size": profile.vocab_size, "documents": len(docs)})
    return PreTrainedTokenizerFast.from_pretrained(run.path)


def zoo_name(without: str | None, design: str) -> str:
    """``original`` or ``retrained-<domain>-<design>``: a pre-training run's kind."""
    return "original" if without is None else f"retrained-{without}-{design}"


def pretrain(
    profile: Profile, *, seed: int | None = None, without: str | None = None, progress: bool = True
) -> Run:
    """Pre-train (or reuse) a model of the zoo; returns its :class:`Run`.

    With ``without=None`` this is the *original model*, trained on D. With
    ``without=domain`` it is that domain's *exact retrained model* for the profile's split
    design: the same tokenizer, seed and chunk order as the original with that design's
    forget chunks of the domain left out (so batches are the original's minus those
    chunks, and there are fewer steps). The original model does not depend on the design.
    ``summary.json`` holds ``ppl[domain][split]`` for every domain (and general),
    ``n_params``, ``tokens``, ``flops`` (6 x parameters x trained tokens), ``wall_s`` and
    the loss curve ``log``.
    """
    import torch

    if profile.base_model:
        if without is not None or seed not in (None, profile.seed):
            raise ValueError(
                f"profile {profile.name!r} starts from the pre-trained base model "
                f"{profile.base_model!r}: there is no retrained model or second "
                "seed to pre-train (set base_model=None to pre-train a zoo)"
            )
        return base_model_run(profile)
    seed = profile.seed if seed is None else seed
    if without is not None:
        check_choice("domain", without, DOMAINS)
    splits = {d: domain_splits(d, profile) for d in ALL_DOMAINS}
    removed = [] if without is None else forget_documents(profile, without, profile.design)
    config = {
        "profile": pretrain_config(profile),
        "seed": seed,
        "docs": {d: {s: [x.sha256 for x in v] for s, v in sp.items()} for d, sp in splits.items()},
        "without": without
        and {
            "domain": without,
            "design": profile.design,
            "docs": sorted(d.sha256 for d in removed),
        },
    }
    kind = zoo_name(without, profile.design)
    run = Run.create("pretrain", f"{profile.name}-{kind}-s{seed}", config)
    if run.done:
        return run

    torch.set_num_threads(profile.threads)
    tokenizer = pretraining_tokenizer(profile)
    model = build_model(profile, len(tokenizer), seed)
    train_set = chunk_documents(tokenizer, pretraining_documents(profile), profile.chunk_len)
    steps = max(1, profile.pretrain_epochs * len(train_set) // profile.pretrain_batch)
    order = stream_order(len(train_set), steps * profile.pretrain_batch, seed)
    if removed:
        removed_ids = {d.id for d in removed}
        keep = [doc not in removed_ids for doc in train_set["doc_id"]]
        order = [i for i in order if keep[i]]
        steps = len(order) // profile.pretrain_batch
    cfg = TrainConfig(
        steps=steps,
        lr=profile.pretrain_lr,
        batch=profile.pretrain_batch,
        micro_batch=profile.pretrain_batch,
        warmup_ratio=0.05,
        weight_decay=0.1,
        seed=seed,
        checkpoint_every=max(1, steps // 5),
    )
    result = train(
        model,
        lambda m, b: nll_loss(m, b["train"]),
        {"train": train_set},
        cfg,
        run.path,
        orders={"train": order},
        desc=f"pre-train {profile.name} {kind}"
        + (f" (seed {seed})" if seed != profile.seed else ""),
        progress=progress,
    )
    if not result["is_main_process"]:
        return run  # under `accelerate launch`, the main process saves and evaluates
    if result["status"] != "finished":
        raise RuntimeError(
            f"pre-training diverged at step {len(result['log'])}; "
            f"lower pretrain_lr (was {profile.pretrain_lr})"
        )
    model = result["model"].eval()
    model.save_pretrained(run.path / "model")
    tokenizer.save_pretrained(run.path / "model")
    chunks = {
        d: {s: chunk_documents(tokenizer, v, profile.chunk_len) for s, v in sp.items()}
        for d, sp in splits.items()
    }  # every split of both designs
    run.finish(
        {
            "ppl": {
                d: {s: perplexity(model, c)["ppl"] for s, c in cs.items()}
                for d, cs in chunks.items()
            },
            "n_chunks": {d: {s: len(c) for s, c in cs.items()} for d, cs in chunks.items()},
            "n_params": n_params(model),
            "tokens": result["tokens"],
            "flops": training_flops(n_params(model), result["tokens"]),
            "wall_s": result["wall_s"],
            "steps": steps,
            "log": result["log"],
        }
    )
    return run


def base_model_run(profile: Profile) -> Run:
    """The original model of a profile with ``base_model``, as a pre-training run whose
    ``model`` links to the checkpoint (a local folder, or the hub download); nothing is
    trained. ``summary.json`` holds ``n_params`` (counted without loading the weights)
    and no training figures."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    run = Run.create("pretrain", f"{profile.name}-base", {"base_model": profile.base_model})
    if run.done:
        return run
    source = Path(profile.base_model).expanduser()
    if not source.exists():
        from huggingface_hub import snapshot_download

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


def pretrain_zoo(profile: Profile, progress: bool = True) -> dict[str, Run]:
    """Every model of the zoo for the profile's split design: the original,
    ``retrained-<domain>`` (each domain's exact retrained model for that design), and
    the original recipe with a second seed (to read differences against seed noise).
    With a ``base_model``, the zoo is that model alone. Once the original exists, the
    others train in ``profile.jobs`` parallel processes."""
    from .parallel import run_tasks, with_threads

    zoo = {"original": pretrain(profile, progress=progress)}
    if not profile.base_model:
        worker = with_threads(profile, profile.jobs)
        quiet = profile.jobs > 1 or not progress
        tasks = [
            (f"retrained-{d}", (worker,), {"without": d, "progress": not quiet}) for d in DOMAINS
        ]
        tasks.append(
            ("original-seed2", (worker,), {"seed": profile.seed + 1, "progress": not quiet})
        )
        runs = run_tasks(
            pretrain,
            tasks,
            profile.jobs,
            profile.threads,
            desc=f"pre-training the {profile.design} zoo",
        )
        zoo.update({name: run for (name, _, _), run in zip(tasks, runs)})
    write_json(
        home() / "pretrain" / f"zoo-{profile.name}-{profile.design}.json",
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


def full_zoo(profile: Profile, progress: bool = True) -> dict[str, Run]:
    """Every pre-trained model of both split designs: ``original``, ``original-seed2``
    and ``retrained-<domain>-<design>`` for each domain and design (8 models)."""
    import dataclasses

    from .config import DESIGNS

    out = {}
    for design in DESIGNS:
        zoo = pretrain_zoo(dataclasses.replace(profile, design=design), progress=progress)
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
