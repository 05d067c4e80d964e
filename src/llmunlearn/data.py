"""Corpus, splits, tokenisation and chunking.

Documents come from real text that a fresh machine can obtain offline (see
``../shared/docs/sources.md``); nothing third-party is committed. Each domain is split *by
document* into ``forget`` (pre-trained on, then unlearned), ``retain`` (pre-trained on, kept)
and ``approximate`` (same domain, never trained on: the paper's approximate-retraining
reference and the membership-inference non-members).

Chunking follows the paper's code: each whole document is tokenised without BOS/EOS, cut into
consecutive non-overlapping chunks of ``chunk_len`` tokens, chunks under
:data:`MIN_CHUNK_TOKENS` tokens are dropped, and chunks are right-padded with labels
:data:`~llmunlearn.core.IGNORE_INDEX` on padding.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .config import SPLITS, Profile, check_choice
from .core import IGNORE_INDEX
from .runs import config_hash, home, read_json, write_json

MIN_CHUNK_TOKENS = 5
"""Chunks shorter than this are dropped (official code)."""


@dataclass(frozen=True)
class Document:
    id: str  # stable and unique within a domain, e.g. "python-stdlib/json/decoder.py"
    text: str
    source: str  # where it came from, with version ("python 3.11.7 standard library")
    license: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


# --------------------------------------------------------------------------- sources --
def python_stdlib_documents() -> list[Document]:
    """The interpreter's own standard library, one document per ``.py`` file (tests,
    IDLE and site-packages excluded). Always present, PSF-2.0."""
    import platform

    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}
    version = platform.python_version()
    docs = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if skip & set(rel.parts):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.append(Document(f"python-stdlib/{rel.as_posix()}", text,
                             f"python {version} standard library", "PSF-2.0"))
    return docs


SOURCES = {"github": [python_stdlib_documents]}
"""Domain -> functions returning its documents. (Only code exists in this slice.)"""


# ---------------------------------------------------------------------------- splits --
def split_documents(docs: list[Document], profile: Profile) -> dict[str, list[Document]]:
    """Split ``docs`` by document into forget / approximate / retain.

    Documents outside ``[min_doc_chars, max_doc_chars]`` are not selected (we select,
    never truncate, so every document stays whole as in the paper). Exact duplicates
    (same text) are kept once, so no text can sit in two splits. Deterministic given
    ``profile.seed`` and the documents.
    """
    seen, pool = set(), []
    for d in sorted(docs, key=lambda d: d.id):
        if profile.min_doc_chars <= len(d.text) <= profile.max_doc_chars and d.sha256 not in seen:
            seen.add(d.sha256)
            pool.append(d)
    random.Random(profile.seed).shuffle(pool)
    need = {"forget": profile.n_forget, "approximate": profile.n_approximate,
            "retain": profile.n_retain}
    if len(pool) < sum(need.values()):
        raise ValueError(
            f"profile {profile.name!r} needs {sum(need.values())} documents "
            f"({need}) but only {len(pool)} have {profile.min_doc_chars}-"
            f"{profile.max_doc_chars} characters")
    out, start = {}, 0
    for split in SPLITS:
        out[split] = pool[start:start + need[split]]
        start += need[split]
    return out


def load_splits(domain: str, profile: Profile) -> dict[str, list[Document]]:
    """The splits of ``domain`` for ``profile``, cached under ``<home>/data``."""
    check_choice("domain", domain, SOURCES)
    docs = [d for source in SOURCES[domain] for d in source()]
    key = config_hash({"domain": domain, "docs": sorted(d.sha256 for d in docs),
                       "sizes": [profile.n_forget, profile.n_retain, profile.n_approximate,
                                 profile.min_doc_chars, profile.max_doc_chars, profile.seed]})
    path = home() / "data" / f"{domain}-{key}.json"
    if path.exists():
        raw = read_json(path)
        return {s: [Document(**d) for d in raw[s]] for s in SPLITS}
    splits = split_documents(docs, profile)
    write_json(path, {s: [d.__dict__ for d in splits[s]] for s in SPLITS})
    return splits


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
