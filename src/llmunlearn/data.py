"""Corpus, splits, tokenisation and chunking.

Each domain is split *by group* (a book, an article, a source file) so that no group and no
exact-duplicate text sits in two splits:

- ``forget``: in pre-training, then unlearned;
- ``retain``: in pre-training, kept (the in-distribution regulariser);
- ``approximate``: same domain, never trained on (the approximate-retraining reference and
  the membership-inference non-members);
- for the ``general`` domain: ``retain`` (in pre-training, the general regulariser) and
  ``evaluation`` (held out, for utility).

Sizes are character budgets from the profile: whole documents are taken in a seeded order
until a split's budget is reached (documents are never truncated).

Chunking follows the paper's code: each whole document is tokenised without BOS/EOS, cut into
consecutive non-overlapping chunks of ``chunk_len`` tokens, chunks under
:data:`MIN_CHUNK_TOKENS` tokens are dropped, and chunks are right-padded with labels
:data:`~llmunlearn.core.IGNORE_INDEX` on padding.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from pathlib import Path

from .config import DOMAINS, GENERAL_SPLITS, IGNORE_INDEX, SPLITS, Profile, check_choice
from .runs import config_hash, home, write_json
from .sources import PINNED_GROUPS, SOURCES, Document, SourceUnavailable

MIN_CHUNK_TOKENS = 5
"""Chunks shorter than this are dropped (official code)."""

HUB_DATASET = "llmunlearn/unlearn_dataset"
"""The paper's dataset on the Hugging Face hub (configs arxiv, github, general)."""

ALL_DOMAINS = (*DOMAINS, "general")


def splits_of(domain: str) -> tuple[str, ...]:
    return GENERAL_SPLITS if domain == "general" else SPLITS


# ------------------------------------------------------------- verified JSON cache --
def _save_verified(path: Path, obj) -> str:
    """Write ``obj`` as JSON with a ``.sha256`` sidecar; returns the digest."""
    blob = json.dumps(obj, sort_keys=True).encode()
    digest = hashlib.sha256(blob).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    path.with_suffix(".sha256").write_text(digest)
    return digest


def _load_verified(path: Path):
    """The cached object, or None if missing or if its bytes do not match the sidecar
    digest (then it is rebuilt, never silently used)."""
    side = path.with_suffix(".sha256")
    if not (path.exists() and side.exists()):
        return None
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != side.read_text().strip():
        warnings.warn(f"cache file {path} does not match its sha256; rebuilding it")
        return None
    return json.loads(blob)


# ------------------------------------------------------------------------ documents --
def source_documents(source) -> tuple[list[Document], str]:
    """Documents of one source function, cached; returns (documents, cache digest)."""
    path = home() / "sources" / f"{source.__name__}.json"
    cached = _load_verified(path)
    if cached is None:
        docs = source()
        _save_verified(path, [d.__dict__ for d in docs])
        cached = _load_verified(path)
    return [Document(**d) for d in cached], path.with_suffix(".sha256").read_text().strip()


def domain_documents(domain: str) -> tuple[list[Document], dict[str, str]]:
    """All documents of ``domain`` from every source; returns (documents, {source: digest}).

    Raises :class:`SourceUnavailable` if a source cannot be fetched."""
    check_choice("domain", domain, SOURCES)
    docs, digests = [], {}
    for source in SOURCES[domain]:
        d, digests[source.__name__] = source_documents(source)
        docs += d
    return docs, digests


# --------------------------------------------------------------------------- splits --
def split_budgets(domain: str, profile: Profile) -> dict[str, int]:
    """Characters wanted per split of ``domain``, in the order splits are filled."""
    if domain == "general":
        return {"evaluation": profile.general_eval_chars, "retain": profile.general_retain_chars}
    return {"forget": profile.forget_chars, "approximate": profile.approximate_chars,
            "retain": profile.retain_chars}


def split_documents(docs: list[Document], budgets: dict[str, int], profile: Profile,
                    pinned: dict[str, tuple[str, ...]] | None = None
                    ) -> dict[str, list[Document]]:
    """Split ``docs`` by group into character ``budgets`` (filled in the given order).

    Documents outside ``[min_doc_chars, max_doc_chars]`` are not selected; exact
    duplicates are kept once; a group's documents never span two splits. Groups in
    ``pinned[split]`` feed only that split and no other. Deterministic given
    ``profile.seed`` and the documents, whatever their order. A split that cannot reach
    its budget raises ``ValueError`` naming the split, what it got and what it needs.
    """
    pinned = pinned or {}
    seen, groups = set(), {}
    for d in sorted(docs, key=lambda d: d.id):
        if profile.min_doc_chars <= len(d.text) <= profile.max_doc_chars and d.sha256 not in seen:
            seen.add(d.sha256)
            groups.setdefault(d.group, []).append(d)
    rng = random.Random(profile.seed)
    reserved = {g for gs in pinned.values() for g in gs}
    if missing := sorted(reserved - set(groups)):
        raise ValueError(f"pinned group(s) {missing} have no selectable documents")
    free = sorted(g for g in groups if g not in reserved)
    rng.shuffle(free)
    out = {}
    for split, budget in budgets.items():
        if split in pinned:
            pool = [d for g in pinned[split] for d in groups.get(g, [])]
            rng.shuffle(pool)
            candidates = [[d] for d in pool]
        else:
            candidates = []
            while free:
                g = free.pop()
                members = groups[g][:]
                rng.shuffle(members)
                candidates.append(members)
                if sum(len(d.text) for c in candidates for d in c) >= budget:
                    break
        taken, size = [], 0
        for group_docs in candidates:
            for d in group_docs:
                if size >= budget:
                    break
                taken.append(d)
                size += len(d.text)
        if size < budget:
            raise ValueError(
                f"split {split!r} has {size:,} characters but profile {profile.name!r} "
                f"needs {budget:,}; lower {split}_chars or add documents")
        out[split] = sorted(taken, key=lambda d: d.id)
    return out


def load_splits(domain: str, profile: Profile) -> dict[str, list[Document]]:
    """The splits of ``domain`` for ``profile``: from the paper's hub dataset when the
    profile says so, else from our sources; cached under ``<home>/data``."""
    check_choice("domain", domain, ALL_DOMAINS)
    if profile.dataset != "local":
        return {s: hub_documents(domain, s, profile.dataset) for s in splits_of(domain)}
    budgets = split_budgets(domain, profile)
    digests, docs = {s.__name__: _source_digest(s) for s in SOURCES[domain]}, None
    if None in digests.values():
        docs, digests = domain_documents(domain)
    key = config_hash({"domain": domain, "sources": digests, "budgets": budgets,
                       "bounds": [profile.min_doc_chars, profile.max_doc_chars],
                       "seed": profile.seed})
    path = home() / "data" / f"{domain}-{key}.json"
    cached = _load_verified(path)
    if cached is not None:
        return {s: [Document(**d) for d in cached[s]] for s in budgets}
    if docs is None:
        docs, _ = domain_documents(domain)
    try:
        splits = split_documents(docs, budgets, profile, PINNED_GROUPS.get(domain))
    except ValueError as e:
        raise ValueError(f"domain {domain!r}: {e}") from None
    _save_verified(path, {s: [d.__dict__ for d in v] for s, v in splits.items()})
    return splits


def _source_digest(source) -> str | None:
    side = home() / "sources" / f"{source.__name__}.sha256"
    return side.read_text().strip() if side.exists() else None


def build_corpus(profile: Profile, domains=ALL_DOMAINS, progress=print) -> Path:
    """Fetch and split every domain, and write the manifest; returns its path.

    The manifest records for every document its domain, split, group, source package and
    version, licence and sha256, plus counts per split. A domain whose source cannot be
    fetched is recorded under ``errors`` and the other domains still build; the function
    then raises :class:`SourceUnavailable` after writing the manifest.
    """
    import time

    manifest = {"profile": profile.name, "domains": {}, "errors": {}}
    for domain in domains:
        t0 = time.perf_counter()
        try:
            splits = load_splits(domain, profile)
        except SourceUnavailable as e:
            manifest["errors"][domain] = str(e)
            progress(f"{domain:<8} FAILED: {e}")
            continue
        manifest["domains"][domain] = {
            "counts": {s: {"documents": len(v), "characters": sum(len(d.text) for d in v),
                           "groups": len({d.group for d in v})} for s, v in splits.items()},
            "documents": [{"id": d.id, "split": s, "group": d.group, "source": d.source,
                           "license": d.license, "sha256": d.sha256, "characters": len(d.text)}
                          for s, v in splits.items() for d in v],
        }
        counts = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
        progress(f"{domain:<8} {counts} documents ({time.perf_counter() - t0:.1f} s)")
    path = home() / "data" / f"manifest-{profile.name}.json"
    write_json(path, manifest)
    if manifest["errors"]:
        raise SourceUnavailable(f"{len(manifest['errors'])} domain(s) could not be built "
                                f"(see {path}):\n" + "\n".join(manifest["errors"].values()))
    return path


# ------------------------------------------------------------- the paper's dataset --
def hub_documents(domain: str, split: str, repo: str = HUB_DATASET) -> list[Document]:
    """Documents of the paper's dataset (``load_dataset(repo, domain, split=split)``).

    ``repo`` is a hub id or a local folder of the same layout. The ``general`` config's
    text column is ``content``; it is renamed to ``text`` as everywhere else. The paper
    released no books config.
    """
    import datasets

    if domain == "books":
        raise ValueError(f"{repo} has no 'books' config (the paper never released one); "
                         "use a profile with dataset='local' for books")
    check_choice(f"split of {domain}", split, splits_of(domain))
    ds = datasets.load_dataset(repo, domain, split=split)
    if "content" in ds.column_names and "text" not in ds.column_names:
        ds = ds.rename_column("content", "text")
    return [Document(f"{domain}/{split}/{i:05d}", t, f"{domain}/{split}/{i:05d}",
                     f"{repo} ({domain}/{split})", "Apache-2.0")
            for i, t in enumerate(ds["text"])]


# ------------------------------------------------------------------------- chunking --
def chunk_token_ids(ids: list[int], chunk_len: int) -> list[list[int]]:
    """Consecutive non-overlapping chunks of ``chunk_len``; short tails (< 5) dropped."""
    chunks = [ids[i:i + chunk_len] for i in range(0, len(ids), chunk_len)]
    return [c for c in chunks if len(c) >= MIN_CHUNK_TOKENS]


def chunk_documents(tokenizer, docs: list[Document], chunk_len: int):
    """Tokenise whole documents (no BOS/EOS) and chunk them as the paper.

    Returns a ``datasets.Dataset`` with ``input_ids``, ``attention_mask``, ``labels``
    (``[chunk_len]`` each, right-padded; labels ``-100`` on padding) and ``doc_id``.
    """
    import datasets

    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token first")
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "doc_id": []}
    encoded = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
    for doc, ids in zip(docs, encoded):
        for chunk in chunk_token_ids(ids, chunk_len):
            pad = chunk_len - len(chunk)
            rows["input_ids"].append(chunk + [tokenizer.pad_token_id] * pad)
            rows["attention_mask"].append([1] * len(chunk) + [0] * pad)
            rows["labels"].append(chunk + [IGNORE_INDEX] * pad)
            rows["doc_id"].append(doc.id)
    return datasets.Dataset.from_dict(rows).with_format(
        "torch", columns=["input_ids", "attention_mask", "labels"], output_all_columns=True)


def document_table(profile: Profile, tokenizer):
    """One row per document of every domain and split: domain, split, id, group, source,
    licence, characters, tokens and chunks (as :func:`chunk_documents` cuts them)."""
    import pandas as pd

    rows = []
    for domain in ALL_DOMAINS:
        for split, docs in load_splits(domain, profile).items():
            ids = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
            for d, toks in zip(docs, ids):
                rows.append({"domain": domain, "split": split, "id": d.id, "group": d.group,
                             "source": d.source, "license": d.license,
                             "characters": len(d.text), "tokens": len(toks),
                             "chunks": len(chunk_token_ids(toks, profile.chunk_len))})
    return pd.DataFrame(rows)
