"""The paper's setting on a real pre-trained LLM (SmolLM2-135M, from PyPI), with an exact
retrained twin.

We cannot retrain a model we did not pre-train, as the paper could not retrain Yi-6B. But
we can *continue* its pre-training on text it cannot have seen, and so make a membership
that we know exactly (the **injected** design, the chapter's main one):

- a pool of modules of pure-Python packages whose *first* PyPI release came after the
  model's (:data:`~llmunlearn.data.sources.POST_RELEASE_PYTHON`, at least
  :data:`MIN_PACKAGES` packages; the dates are read from PyPI into the manifest), split
  at random *by package* into ``forget``, ``retain`` and ``approximate`` (no package on
  two sides): exchangeable samples of the same kind of code, none of it seen by SmolLM2;
- the **original** is SmolLM2 after a short continued pre-training on forget (repeated)
  + retain + a slice of general text (:func:`continued`); its **exact retrained twin**
  is the same continuation, same order and seed, with every forget chunk replaced by a
  retain or general chunk (the same number of steps);
- the paper's methods then unlearn the original, and both the approximate target and the
  twin say how far each got.

The **shifted** design is the paper's own kind and is kept only as the contrast it is:
forget = modules of Python's standard library (from a pinned Debian package; SmolLM2 has
very likely seen them) against the same approximate modules. Forget and approximate then
differ in authors, age and idiom as well as in membership, so what an attack measures
there is the distance between two kinds of code; the blind baseline
(:func:`~llmunlearn.measurement.mia.blind_baseline`) says how much of it the text alone gives away.

Both are written as folders in the layout of the paper's hub dataset, so that a profile
with ``base_model`` and ``dataset`` runs the same runner, evaluation and
lm-evaluation-harness code as the ``paper`` profile.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import random
import re
from pathlib import Path
from unittest import mock

import datasets
import gguf
import pandas as pd
import torch
import transformers.modeling_gguf_pytorch_utils as gguf_loader
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..config import Profile, check_choice, check_int, check_positive, model_profile
from ..data.corpus import (
    chunk_documents,
    chunk_texts,
    chunked_splits,
    domain_splits,
    load_splits,
    selectable,
    source_documents,
    take,
)
from ..data.own import write_hub_layout
from ..evaluation import evaluate_membership, evaluate_reference
from ..measurement.mia import blind_baseline
from ..models import load_model, n_params
from ..progress import progress_bar
from ..runs import Run, folder_written
from ..training.loop import saved_model, training_flops
from ..training.pretraining import base_model_run, train_lm
from ..unlearning.methods import get_method
from ..unlearning.runner import unlearn_all, unlearning_inputs, unlearning_run
from .decisions import paired_auc_difference
from .quantisation import quantisation_attack
from .utility import lm_eval_run

MODEL_RELEASED = "2024-11-01"
"""SmolLM2's release (November 2024); its pre-training data were collected before."""

SPLITS = {"github": ("forget", "retain", "approximate"), "general": ("retain", "evaluation")}

DESIGNS = ("injected", "shifted")
"""``injected``: members we made by continued pre-training, against an exact twin (the
main design); ``shifted``: the standard library against newer code (the paper's kind)."""

MIN_PACKAGES = 20
"""The fewest packages the injected pool may come from, so that no split is one team's
code."""


def _release_checked(docs) -> list:
    """``docs`` if every one is known (from PyPI, in its ``source``) to be first published
    after :data:`MODEL_RELEASED`, else a ``ValueError`` naming the first that is not."""
    for d in docs:
        first = re.search(r"first release (\d{4}-\d{2}-\d{2})", d.source)
        if first is None or first.group(1) <= MODEL_RELEASED:
            raise ValueError(
                f"document {d.id} ({d.source}) is not known to be first published "
                f"after the model's release ({MODEL_RELEASED}): drop its package from "
                "the list"
            )
    return docs


def real_llm_splits(profile: Profile, chars: int, design: str = "injected") -> dict[str, list]:
    """The documents of every split (``"github/forget"``, ...): ``chars`` characters each
    (passages of modules, :func:`~llmunlearn.data.corpus.cut_passages`, of at most a quarter
    of ``chars`` and within the profile's length bounds, so that every split has several;
    seeded order). The injected design draws forget, retain and approximate at random from
    one shuffled pool of passages of post-release modules; the shifted design keeps that
    approximate set and takes forget and retain from the standard library. A pool of fewer
    than :data:`MIN_PACKAGES` packages, a document not newer than the model, or a split the
    pool cannot fill is a ``ValueError``, before anything is written."""

    from ..data.sources import debian_python_stdlib, post_release_python

    check_choice("real-LLM design", design, DESIGNS)
    cap = min(profile.max_doc_chars, max(profile.min_doc_chars, chars // 4))
    bounded = dataclasses.replace(profile.data, max_doc_chars=cap, passage_chars=cap)
    new = selectable(_release_checked(source_documents(post_release_python)[0]), bounded)
    packages = sorted({d.id.split("/")[0] for d in new})
    if len(packages) < MIN_PACKAGES:
        raise ValueError(
            f"the post-release pool has documents from {len(packages)} packages "
            f"({', '.join(packages)}); the injected design needs at least {MIN_PACKAGES}"
        )
    rng = random.Random(profile.seed)
    out = {f"github/{s}": take(stream, chars) for s, stream in _by_package(new, rng).items()}
    if design == "shifted":
        seen = selectable(source_documents(debian_python_stdlib)[0], bounded)
        rng.shuffle(seen)
        stdlib = iter(seen)
        out["github/forget"] = take(stdlib, chars)
        out["github/retain"] = take(stdlib, chars)
    general = domain_splits("general", profile)
    for split in SPLITS["general"]:
        out[f"general/{split}"] = take(iter(general[split]), chars)
    for key, docs in out.items():  # general takes what the zoo's split has, up to chars
        need, least = (chars, 2) if key.startswith("github/") else (1, 1)
        if sum(len(d.text) for d in docs) < need or len(docs) < least:
            raise ValueError(
                f"real-LLM split {key} gets {len(docs)} documents of "
                f"{sum(len(d.text) for d in docs):,} characters from its pool; it needs "
                f"{need:,} characters in at least {least}: lower chars or the profile's "
                f"min_doc_chars ({profile.min_doc_chars})"
            )
    return out


def _by_package(docs, rng) -> dict:
    """Per github split, an iterator over its passages: the packages dealt to the splits in
    a seeded order (a package sits on one side only, so no membership leaks through a
    package's shared names and idiom), each split's passages interleaved over its packages
    (so that no split is one package's code while others wait)."""

    packages: dict[str, list] = {}
    for d in docs:
        packages.setdefault(d.id.split("/")[0], []).append(d)
    names = sorted(packages)
    rng.shuffle(names)
    out = {}
    for k, split in enumerate(SPLITS["github"]):
        mine = [packages[n] for n in names[k :: len(SPLITS["github"])]]
        for passages in mine:
            rng.shuffle(passages)
        out[split] = (
            d for d in itertools.chain.from_iterable(itertools.zip_longest(*mine)) if d is not None
        )
    return out


def real_llm_dataset(profile: Profile, chars: int, design: str = "injected") -> Path:
    """The folder of :func:`real_llm_splits` (paper's hub layout: configs ``github`` and
    ``general``, one parquet file per split, ``text`` / ``content`` columns) and its
    ``manifest.json``: per document its split, source package and version with the PyPI
    dates, licence and sha256. Built once per profile, size and design."""
    splits = real_llm_splits(profile, chars, design)
    manifest = {"design": design, "model_released": MODEL_RELEASED, "chars_per_split": chars}
    return write_hub_layout(f"real-llm-{design}-{profile.name}", splits, manifest)


def real_llm_folders(p: Profile) -> dict[str, Path]:
    """The github splits of ``p``'s data (forget, retain, approximate) as folders of text
    files, one document each (its id as the path): the form ``llmunlearn unlearn --forget
    PATH`` reads, for the chapter's own-model section and the README's example. Written
    once beside the data (complete or absent: renamed into place)."""
    splits, out = load_splits("github", p), {}
    for split in SPLITS["github"]:
        folder = Path(p.dataset) / "text" / split
        if not folder.exists():
            with folder_written(folder) as partial:
                for d in splits[split]:
                    f = partial / f"{d.id}.txt"
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_text(d.text)
        out[split] = folder
    return out


def logit_check(
    gguf_file: str | Path, folder: str | Path, texts: list[str], tokens: int = 64
) -> dict:
    """Our converted model (``folder``, from :func:`~llmunlearn.models.read_gguf`) against
    transformers' own GGUF loader on the same file: the largest absolute difference of
    their logits on the first ``tokens`` tokens of each text, the largest logit, and how
    often their next-token choices agree."""

    gguf_file = Path(gguf_file)
    ours, tokenizer = load_model(folder)

    # its tensor loop uses tqdm.auto, a widget in a kernel (which the built book would
    # fetch from a CDN): this library's bar is text in the book and a widget in JupyterLab.
    # The loader parses the file once for the configuration and again for the weights,
    # and builds the same tensor-name map once per tensor (397 times): both memoised for
    # this call (20 s instead of about 40 on 2 cores; the same weights)
    with (
        mock.patch.object(gguf_loader, "tqdm", progress_bar),
        mock.patch.object(gguf, "GGUFReader", functools.lru_cache(gguf.GGUFReader)),
        mock.patch.object(
            gguf, "get_tensor_name_map", functools.lru_cache(gguf.get_tensor_name_map)
        ),
    ):
        theirs = AutoModelForCausalLM.from_pretrained(
            str(gguf_file.parent), gguf_file=gguf_file.name
        )
    diff, peak, agree, n = 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :tokens]
            a, b = ours.eval()(ids).logits.float(), theirs.eval()(ids).logits.float()
            diff = max(diff, (a - b).abs().max().item())
            peak = max(peak, a.abs().max().item())
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            n += ids.shape[1]
    return {
        "max_abs_diff": diff,
        "max_abs_logit": peak,
        "argmax_agreement": agree / n,
        "tokens": n,
        "texts": len(texts),
    }


METHODS = ("ga", "ga_gd_in", "npo")
"""The methods run on the real LLM: the paper's baseline, its most robust variant, NPO."""


def real_llm_profile(
    profile: Profile,
    *,
    design: str = "injected",
    chars: int | None = None,
    steps: int = 6,
    lr: float = 5e-5,
    batch: int = 2,
    eval_every: int | None = None,
) -> Profile:
    """``profile`` turned to SmolLM2 (converted once, :func:`~llmunlearn.models.smollm2`)
    on the data of :func:`real_llm_dataset` (``design``; ``chars`` per split, default an
    eighth of the profile's approximate budget): ``steps`` unlearning steps of ``batch``
    forget chunks at ``lr``, evaluated every ``eval_every`` steps (default: at the end
    only) on at most half the profile's evaluation sample per set. A real LLM of 135M
    parameters runs about 40 times slower per token than the ``cpu`` zoo's model
    (measured on 2 cores: about 290 tokens/s evaluated, 67 trained), hence the small
    default budget. Every argument is checked, and the data are built, before anything
    is trained."""
    from ..models import smollm2

    check_choice("real-LLM design", design, DESIGNS)
    chars = profile.approximate_chars // 8 if chars is None else chars
    check_int("chars", chars, 1)
    check_int("steps", steps, 1)
    check_int("batch", batch, 1)
    check_positive("learning rate", lr)
    eval_every = steps if eval_every is None else check_int("eval_every", eval_every, 1)
    data, folder = real_llm_dataset(profile, chars, design), smollm2()
    return model_profile(
        profile,
        folder,
        data,
        unlearn_lr=lr,
        unlearn_steps=steps,
        unlearn_batch=batch,
        eval_every=eval_every,
        eval_chunks=max(8, profile.eval_chunks // 2),
    )


CONTINUATION = {"repeats": 1, "lr": 2e-4, "batch": 4}
"""The continued pre-training that makes the injected members: every forget chunk
``repeats`` times, the retain chunks and a slice of general text once, in one seeded
shuffle, ``batch`` chunks a step at peak ``lr`` (AdamW, warm-up then cosine, the zoo's
recipe). Seen once, the members' memorisation gap lands in the zoo's band on ``cpu``
(measured 1.41; twice gave 2.23)."""


def _continuation_parts(p: Profile) -> dict:
    """D of the continuation, by part: the forget and retain documents of ``p``'s data
    and half its general/retain documents."""

    splits, general = load_splits("github", p), load_splits("general", p)
    return {
        "forget": splits["forget"],
        "retain": splits["retain"],
        "general": general["retain"][: max(1, len(general["retain"]) // 2)],
    }


def continuation_chunks(p: Profile, tokenizer):
    """Every chunk of D of the continuation (forget, retain, general, in that order) as one
    dataset with a ``part`` column: what :func:`continued`'s ``order`` indexes."""

    parts = {
        k: chunk_documents(tokenizer, v, p.chunk_len) for k, v in _continuation_parts(p).items()
    }
    joined = datasets.concatenate_datasets([c.with_format(None) for c in parts.values()])
    joined = joined.add_column("part", [k for k, c in parts.items() for _ in range(len(c))])
    return joined.with_format(
        "torch", columns=["input_ids", "attention_mask", "labels"], output_all_columns=True
    )


def continuation_recipe(**overrides) -> dict:
    """:data:`CONTINUATION` with ``overrides``, checked: an unknown setting, a repeat count
    or batch below 1 or a learning rate that is not positive is a ``ValueError``."""
    recipe = {**CONTINUATION, **overrides}
    unknown = set(recipe) - set(CONTINUATION)
    if unknown:
        raise ValueError(
            f"unknown continuation settings {sorted(unknown)}; allowed: {sorted(CONTINUATION)}"
        )
    check_int("repeats", recipe["repeats"], 1)
    check_int("batch", recipe["batch"], 1)
    check_positive("learning rate", recipe["lr"])
    return recipe


def continuation_order(kinds: list[str], repeats: int, batch: int, seed: int, twin: bool):
    """The chunks a continuation trains on, in order (indices of ``kinds``, each chunk's
    part): every forget chunk ``repeats`` times and every other chunk once, shuffled with
    the seed, cut to whole batches; for the ``twin``, the same order with every forget
    chunk replaced by a replayed chunk of another part (it never sees a forget token and
    takes as many steps)."""
    order = [i for i, k in enumerate(kinds) if k == "forget"] * repeats + [
        i for i, k in enumerate(kinds) if k != "forget"
    ]
    random.Random(seed + 2000).shuffle(order)
    order = order[: max(1, len(order) // batch) * batch]  # whole batches
    if twin:
        rest = [i for i, k in enumerate(kinds) if k != "forget"]
        pick = random.Random(seed + 3000)
        order = [i if kinds[i] != "forget" else rest[pick.randrange(len(rest))] for i in order]
    return order


def continued(p: Profile, *, twin: bool = False, progress: bool = True, **overrides) -> Run:
    """SmolLM2 (``p.base_model``) after a continued pre-training on ``p``'s injected data
    (:data:`CONTINUATION`, ``overrides`` replacing any of it): the *original*, or with
    ``twin=True`` its exact retrained twin, the same order and seed with every forget chunk
    replaced by a chunk of retain or general text (so it never trains on a forget token
    and takes the original's number of steps). The run's ``model/`` is a Hugging
    Face folder; ``summary.json`` holds ``tokens``, ``steps``, ``flops``, ``wall_s``,
    the loss curve, the chunk counts of each part, and the ``order`` of the trained
    chunks (indices of :func:`continuation_chunks`) with their documents."""

    recipe = continuation_recipe(**overrides)
    parts = _continuation_parts(p)
    name = "twin" if twin else "original"
    run = Run.create(
        "pretrain",
        f"{p.name}-smollm2-{name}",
        {
            "base_model": Path(p.base_model).name,
            "seed": p.seed,
            "chunk_len": p.chunk_len,
            "recipe": recipe,
            "docs": {k: [d.sha256 for d in v] for k, v in parts.items()},
            "twin": twin and "replace",
        },
        stage="real-llm",
    )
    if run.done:
        return run
    torch.set_num_threads(p.threads)
    model, tokenizer = load_model(p.base_model)
    train_set = continuation_chunks(p, tokenizer)
    kinds = list(train_set["part"])
    order = continuation_order(kinds, recipe["repeats"], recipe["batch"], p.seed, twin)
    steps = len(order) // recipe["batch"]
    recipe_profile = p.replace(pretrain_batch=recipe["batch"], pretrain_lr=recipe["lr"])
    result = train_lm(
        recipe_profile.pretraining,
        p.execution,
        model,
        train_set,
        order,
        steps,
        recipe["lr"],
        0.1,
        p.seed,
        run,
        f"continue SmolLM2 ({name})",
        progress,
        checkpoints=0,  # a few minutes, and each save is half a gigabyte
    )
    model = saved_model(result, run.path / "model", tokenizer)  # from every process
    if model is None:
        return run  # under `accelerate launch`, the main process writes the summary
    n = n_params(model)
    doc_ids = list(train_set["doc_id"])
    run.finish(
        {
            "n_params": n,
            "chunks": {k: kinds.count(k) for k in parts},
            "trained_forget_chunks": sum(kinds[i] == "forget" for i in order),
            "order": order,
            "order_doc_ids": [doc_ids[i] for i in order],
            "tokens": result["tokens"],
            "steps": steps,
            "flops": training_flops(n, result["tokens"]),
            "wall_s": result["wall_s"],
            "log": result["log"],
            "ppl": {},
        }
    )
    return run


def real_llm_zoo(p: Profile, progress: bool = True, **overrides) -> dict[str, Run]:
    """The injected design's models: ``base`` (SmolLM2 itself), ``original`` (continued
    on D) and ``retrained-github`` (its exact twin), keyed as the zoo's are so that every
    function that compares a domain's models (the quantisation attack among them) takes
    the twin as the retrained model."""

    return {
        "base": base_model_run(p),
        "original": continued(p, progress=progress, **overrides),
        "retrained-github": continued(p, twin=True, progress=progress, **overrides),
    }


def real_llm_table(p: Profile, runs: dict, zoo: dict | None = None, progress: bool = True):
    """One row per model: the continued ``original``, its exact ``twin`` (with ``zoo``,
    from :func:`real_llm_zoo`; else the original is SmolLM2 itself) and each method's
    selected step: forget, approximate, retain and
    general perplexity, forget over the target (the original's approximate perplexity),
    forget over the twin's forget perplexity, the Min-K% AUC with its interval and TPR at
    1 % FPR, the AUC's distance to the twin's, and the utility battery's accuracy through
    lm-evaluation-harness."""

    first = next(iter(runs.values())).summary
    zoo = zoo or {"original": base_model_run(p)}
    models = {}
    for name, key in (("original", "original"), ("twin", "retrained-github")):
        if key in zoo:
            models[name] = (evaluate_reference(p, "github", zoo[key]), zoo[key].path / "model")
    for m, run in runs.items():
        models[m] = (run.summary["selected"], run.path / "selected")
    twin = models.get("twin", (None,))[0]
    rows = []
    for name, (row, path) in progress_bar(
        models.items(), desc="utility of SmolLM2 models", disable=not progress
    ):
        # the battery before (the original) and after each method; the twin's utility
        # is read from its perplexities (a real LLM is slow on a CPU)
        res = (
            lm_eval_run(p, path, "battery", quiet=True).summary["results"]
            if name != "twin"
            else {"llmunlearn_battery": {"acc": float("nan")}}
        )
        rows.append(
            {
                "model": name,
                "step": row.get("step", 0),
                "forget": row["ppl_forget"],
                "approximate": row["ppl_approximate"],
                "retain": row["ppl_retain"],
                "general": row["ppl_general"],
                "forget / target": row["ppl_forget"] / first["target"],
                "forget / twin": row["ppl_forget"] / twin["ppl_forget"] if twin else float("nan"),
                "AUC": row["auc"],
                "AUC - twin": row["auc"] - twin["auc"] if twin else float("nan"),
                "battery acc": res["llmunlearn_battery"]["acc"],
                "reached": bool(row.get("reached_target", False)),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def _texts_and_units(p: Profile) -> tuple[dict, dict]:
    """A real-LLM design's forget and approximate chunks as the blind baseline reads them:
    ``(sets, unit_of)``, ``sets[split]`` the chunks' texts and units (a package or a
    standard-library module), ``unit_of[split]`` each document's unit."""
    tokenizer = AutoTokenizer.from_pretrained(p.base_model)  # the text, not the weights
    chunks = chunked_splits(p, "github", tokenizer)
    documents = json.loads((Path(p.dataset) / "manifest.json").read_text())["documents"]
    sets, unit_of = {}, {}
    for split in ("forget", "approximate"):
        # the hub layout numbers a split's documents in the manifest's order
        unit = {
            f"github/{split}/{i:05d}": d["group"]
            for i, d in enumerate(x for x in documents if x["split"] == f"github/{split}")
        }
        unit_of[split] = unit
        c = chunks[split]
        sets[split] = (chunk_texts(tokenizer, c), [unit[d] for d in c["doc_id"]])
    return sets, unit_of


def membership_table(designs: dict[str, Profile], zoo: dict, folds: int = 5):
    """Per design (name -> real-LLM profile): the members (forget) against the
    non-members (approximate) as a model sees them, the Min-K% AUC with its interval over documents
    and its TPR at 1 % FPR (at the smallest rate the chunks resolve, stated), beside the blind
    baseline on the same chunks (:func:`~llmunlearn.measurement.mia.blind_baseline`, text alone,
    cross-validated by unit: a package, or a standard-library module) and whether the attack's
    interval lies above the blind one's. The injected design is read on the continued original and
    on its twin (which never saw the members: its AUC is what no membership looks like here), and
    the original's row holds the paired difference of its AUC from the twin's on the same chunks
    (``twin difference``, with its 95 % interval resampling packages); the shifted design on
    SmolLM2 itself."""

    rows = []
    for design, p in designs.items():
        sets, unit_of = _texts_and_units(p)
        n_docs = min(len(set(sets[s][1])) for s in sets)
        blind = blind_baseline(
            *sets["forget"], *sets["approximate"], folds=min(folds, n_docs), seed=p.seed
        )
        rows_of = (
            {
                n: evaluate_reference(p, "github", zoo[k])
                for n, k in (("original", "original"), ("twin", "retrained-github"))
            }
            if design == "injected"
            else {"SmolLM2": evaluate_membership(p, "github", base_model_run(p))}
        )
        paired = {}
        if design == "injected":
            units = {
                s: [unit_of[s][d] for d in rows_of["original"]["score_docs"][s]]
                for s in ("forget", "approximate")
            }
            diff, lo, hi = paired_auc_difference(
                rows_of["original"]["scores"],
                rows_of["twin"]["scores"],
                units["forget"],
                units["approximate"],
                seed=p.seed,
            )
            paired = {
                "twin difference": diff,
                "twin difference low": lo,
                "twin difference high": hi,
            }
        for name, row in rows_of.items():
            rows.append(
                {
                    "design": design,
                    "model": name,
                    "Min-K% AUC": row["auc"],
                    "low": row["auc_low"],
                    "high": row["auc_high"],
                    "TPR@1%": row.get("tpr@0.01", float("nan")),
                    "smallest FPR": row.get("smallest_fpr", float("nan")),
                    "blind AUC": blind["auc"],
                    "blind low": blind["ci_low"],
                    "blind high": blind["ci_high"],
                    "blind TPR@1%": blind["tpr@0.01"],
                    "attack beats blind": bool(row["auc_low"] > blind["ci_high"]),
                    "member chunks": len(sets["forget"][0]),
                    "non-member chunks": len(sets["approximate"][0]),
                    "folds": blind["folds"],
                    **(paired if name == "original" else {}),
                }
            )
    return pd.DataFrame(rows).set_index(["design", "model"])


def twin_check(p: Profile, zoo: dict) -> dict:
    """What the injected design gives, read on the same evaluation sets: ``M``, the
    continued original's approximate over forget perplexity (its memorisation gap);
    ``R``, the twin's forget over approximate perplexity (1 when the twin cannot tell
    the forget set from unseen text); both models' AUC (the twin's with its interval)."""

    o, t = (evaluate_reference(p, "github", zoo[k]) for k in ("original", "retrained-github"))
    return {
        "M": o["ppl_approximate"] / o["ppl_forget"],
        "R": t["ppl_forget"] / t["ppl_approximate"],
        "auc_original": o["auc"],
        "auc_twin": t["auc"],
        "auc_twin_low": t["auc_low"],
        "auc_twin_high": t["auc_high"],
        "twin_forget_over_original": t["ppl_forget"] / o["ppl_forget"],
    }


def real_llm_study(
    profile: Profile,
    methods=METHODS,
    *,
    chars: int | None = None,
    steps: int = 6,
    lr: float = 5e-5,
    batch: int = 2,
    continuation: dict | None = None,
    progress: bool = True,
) -> dict:
    """Everything the real-LLM chapter shows, cached, for the chapter and the claims page
    alike: ``profile`` / ``shifted`` (the two designs' profiles), ``zoo``
    (:func:`real_llm_zoo`), ``runs`` (each method on the continued original),
    ``table`` (:func:`real_llm_table`), ``twin`` (:func:`twin_check`), ``membership``
    (:func:`membership_table`) and ``quantisation`` (the original, the twin and each
    method's selected model at 4 bits, the GGUF file's own scheme, on forget and
    approximate; :func:`~llmunlearn.studies.quantisation.quantisation_attack`, with the share of
    weights back on SmolLM2's). Every argument is checked before anything trains."""

    methods = list(methods)
    for m in methods:
        get_method(m)  # an unknown method is named before anything is fetched
    p = real_llm_profile(profile, chars=chars, steps=steps, lr=lr, batch=batch)
    shifted = real_llm_profile(
        profile, design="shifted", chars=chars, steps=steps, lr=lr, batch=batch
    )
    zoo = real_llm_zoo(p, progress=progress, **(continuation or {}))
    runs = unlearn_all(p, "github", methods, original=zoo["original"], progress=progress)
    return {
        "profile": p,
        "shifted": shifted,
        "zoo": zoo,
        "runs": runs,
        "table": real_llm_table(p, runs, zoo, progress=progress),
        "twin": twin_check(p, zoo),
        "membership": membership_table({"injected": p, "shifted": shifted}, zoo),
        "quantisation": quantisation_attack(
            p,
            "github",
            zoo,
            methods,
            bits=(4,),
            splits=("forget", "approximate"),
            base=p.base_model,
            progress=progress,
        ),
    }


def zoo_agreement(profile: Profile, table):
    """The same methods on the zoo's GitHub domain (the unlearning chapter's runs at the
    profile's defaults) next to the real LLM: whether each reached the target, and the
    change of the Min-K% AUC. ``agree`` when both reach (or both miss) the target and the
    AUC moves the same way."""

    rows = []
    before = table.loc["original"]
    inputs = unlearning_inputs(profile, "github")
    for m in table.index.drop("original"):
        s = unlearning_run(inputs, m, progress=False).summary
        zoo_reached = bool(s["selected"]["reached_target"])
        zoo_dauc = s["selected"]["auc"] - s["evals"][0]["auc"]
        real_dauc = table.loc[m, "AUC"] - before["AUC"]
        rows.append(
            {
                "method": m,
                "zoo reached": zoo_reached,
                "SmolLM2 reached": bool(table.loc[m, "reached"]),
                "zoo AUC change": zoo_dauc,
                "SmolLM2 AUC change": real_dauc,
                "agree": zoo_reached == bool(table.loc[m, "reached"])
                and (zoo_dauc < 0) == (real_dauc < 0),
            }
        )
    return pd.DataFrame(rows).set_index("method")
