"""Corpus, splits, tokenisation and chunking.

Each unlearning domain has five splits, for two *designs* of the forget / approximate pair:

- ``retain``: in pre-training, kept (the in-distribution regulariser), shared by both designs;
- ``matched/forget`` and ``matched/approximate`` (the default design): single documents drawn
  at random from one pool, so the two are exchangeable samples of one distribution, as the
  paper's arXiv and GitHub sets were (hundreds of documents on each side). Retain is drawn
  from the same pool;
- ``shifted/forget`` and ``shifted/approximate``: whole groups (one novel against another,
  some articles or packages against others), kept as the contrast.

Forget sets are in pre-training, then unlearned; approximate sets are never trained on (the
approximate-retraining reference and the membership-inference non-members). One original
model has seen both designs' forget sets, and each (domain, design) has its own exact
retrained model. For the ``general`` domain: ``retain`` (in pre-training, the general
regulariser) and ``evaluation`` (held out, for utility). :func:`load_splits` gives a run's
view: ``forget``, ``retain``, ``approximate`` of one design.

Sizes are character budgets from the profile: whole documents are taken in a seeded order
until a split's budget is reached (documents are never truncated). A profile with
``passage_chars`` first cuts every longer document at blank lines into passages
(:func:`cut_passages`), and the passages are the documents: so a split of ten thousand
characters holds several dozen, drawn from many sources. In the matched design passages
of one source may land in different splits, on both sides alike (forget and
approximate are drawn from one shuffled stream).

Chunking follows the paper's code: each whole document is tokenised without BOS/EOS, cut into
consecutive non-overlapping chunks of ``chunk_len`` tokens, chunks under
:data:`MIN_CHUNK_TOKENS` tokens are dropped, and chunks are right-padded with labels
:data:`~llmunlearn.core.IGNORE_INDEX` on padding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
import warnings
from pathlib import Path

import datasets
import pandas as pd

from ..config import (
    DESIGNS,
    DOMAINS,
    DataConfig,
    GENERAL_SPLITS,
    IGNORE_INDEX,
    SPLITS,
    Profile,
    check_choice,
)
from ..runs import config_hash, home, write_json
from ..stages import stage_digest
from .sources import (
    MATCHED_POOL,
    SHIFTED_PINS,
    SOURCES,
    Document,
    SourceUnavailable,
    passages,
)

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
    """Documents of one source function, cached; returns (documents, cache digest). A
    source whose pins are its default arguments (a package list) is cached per pins."""
    pins = f"-{config_hash(repr(source.__defaults__))}" if source.__defaults__ else ""
    path = home() / "sources" / f"{source.__name__}{pins}.json"
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
def split_budgets(domain: str, data: DataConfig) -> dict[str, int]:
    """Characters wanted per split of ``domain``, in the order splits are filled: for the
    unlearning domains, each design's forget and approximate sets and the shared retain
    set (``"matched/forget"``, ..., ``"retain"``); for general, evaluation and retain."""
    if domain == "general":
        return {"evaluation": data.general_eval_chars, "retain": data.general_retain_chars}
    return {
        f"{design}/{split}": getattr(data, f"{split}_chars")
        for design in ("shifted", "matched")
        for split in ("forget", "approximate")
    } | {"retain": data.retain_chars}


PART = "/part"
"""What a passage's id adds to its document's: ``<id>/part<j>``."""


def source_id(doc_id: str) -> str:
    """The id of the document a passage was cut from (a whole document's own id)."""
    return doc_id.split(PART)[0]


def cut_passages(docs: list[Document], max_chars: int | None) -> list[Document]:
    """Each document longer than ``max_chars`` cut at blank lines into passages of at most
    that many characters (:func:`~llmunlearn.data.sources.passages`; a single longer
    paragraph stays whole), each a document of its own: id ``<id>/part<j>``, the same
    group, source and licence. ``None`` keeps whole documents."""
    if max_chars is None:
        return list(docs)
    return [
        piece
        for d in docs
        for piece in (
            [d]
            if len(d.text) <= max_chars
            else [
                Document(f"{d.id}{PART}{j}", text, d.group, d.source, d.license)
                for j, text in enumerate(passages(d.text, max_chars))
            ]
        )
    ]


def document_bounds(data: DataConfig, domain: str) -> DataConfig:
    """``data`` (a profile's data part) with the document bounds that hold for ``domain``:
    general text keeps whole documents within ``general_doc_chars`` when they are set (it is never
    unlearned, and the utility battery reads half-chunk contexts from it); the unlearning
    domains' documents are cut and bounded as the profile says."""

    if domain != "general" or data.general_doc_chars is None:
        return data
    lo, hi = data.general_doc_chars
    return dataclasses.replace(data, min_doc_chars=lo, max_doc_chars=hi, passage_chars=None)


def selectable(docs: list[Document], data: DataConfig) -> list[Document]:
    """Documents (passages, when ``data`` cuts them: :func:`cut_passages`) within its
    length bounds, exact duplicates kept once, by id."""
    seen, out = set(), []
    for d in sorted(cut_passages(docs, data.passage_chars), key=lambda d: d.id):
        if data.min_doc_chars <= len(d.text) <= data.max_doc_chars and d.sha256 not in seen:
            seen.add(d.sha256)
            out.append(d)
    return out


def take(candidates, budget: int) -> list[Document]:
    """Documents from ``candidates`` (an iterable of documents, consumed) until their
    characters reach ``budget``."""
    taken, size = [], 0
    if budget <= 0:
        return taken
    for d in candidates:
        taken.append(d)
        size += len(d.text)
        if size >= budget:
            break
    return taken


class SplitError(ValueError):
    """A split cannot be filled from its pool."""


def _check_filled(domain, key, taken, budget, pool_size) -> None:
    size = sum(len(d.text) for d in taken)
    if size < budget:
        design, _, split = key.rpartition("/")
        field = (
            {"evaluation": "general_eval_chars", "retain": "general_retain_chars"}[split]
            if domain == "general"
            else f"{split}_chars"
        )
        where = f"domain {domain!r}" + (f", design {design!r}" if design else "")
        raise SplitError(
            f"{where}: split {split!r} has {size:,} characters in {len(taken)} documents "
            f"from {len({d.group for d in taken})} groups (pool: {pool_size} documents) but "
            f"the profile needs {budget:,}; lower {field} or add documents"
        )


def split_documents(
    docs: list[Document],
    data: DataConfig,
    seed: int,
    domain: str = "",
    shifted_pins: dict | None = None,
    matched_pool=None,
) -> dict[str, list[Document]]:
    """Assign ``docs`` (one domain's) to the splits of :func:`split_budgets`, disjoint by
    document and by text, by the sizes of a profile's ``data`` part, deterministic given
    ``seed`` whatever the input order.

    - ``shifted/forget`` and ``shifted/approximate``: whole *groups* (a book, an article, a
      package): the groups of ``shifted_pins[split]`` if given, else groups drawn at random
      until the budget is reached. Every group they touch is reserved for them.
    - ``matched/forget``, ``matched/approximate``, ``retain``: single *documents* drawn at
      random from one pool (every document outside the reserved groups; the groups in
      ``matched_pool`` first when given), so forget and approximate are exchangeable
      samples of one distribution and retain comes from the same distribution. Retain
      then fills up from the rest of the pool.
    - ``general`` (``domain="general"``): evaluation and retain take whole groups.

    A split that cannot reach its budget raises :class:`SplitError` naming the domain,
    design, split, what it got and what it needs.
    """
    budgets = split_budgets(domain, data)
    docs = selectable(docs, document_bounds(data, domain))
    rng = random.Random(seed)
    groups: dict[str, list[Document]] = {}
    for d in docs:
        groups.setdefault(d.group, []).append(d)
    for members in groups.values():
        rng.shuffle(members)
    out: dict[str, list[Document]] = {}

    def whole_groups(key, names):
        taken, used = [], []
        for g in names:
            if sum(len(d.text) for d in taken) >= budgets[key]:
                break
            used.append(g)
            taken += take(iter(groups[g]), budgets[key] - sum(len(d.text) for d in taken))
        _check_filled(domain, key, taken, budgets[key], len(docs))
        out[key] = taken
        return used

    pins = shifted_pins or {}
    if missing := sorted({g for gs in pins.values() for g in gs} - set(groups)):
        raise SplitError(
            f"domain {domain!r}: pinned group(s) {missing} have no selectable documents"
        )
    free = sorted(g for g in groups if g not in {g for gs in pins.values() for g in gs})
    rng.shuffle(free)
    if domain == "general":
        for key in budgets:
            used = whole_groups(key, free)
            free = [g for g in free if g not in used]
    else:
        for split in ("forget", "approximate"):
            key = f"shifted/{split}"
            used = whole_groups(key, list(pins.get(split, ())) or free)
            free = [g for g in free if g not in used]
        preferred = set(matched_pool or ()) & set(free)
        first = [d for g in sorted(free) if not preferred or g in preferred for d in groups[g]]
        rest = [d for g in sorted(free) if preferred and g not in preferred for d in groups[g]]
        rng.shuffle(first)
        rng.shuffle(rest)
        stream = iter(first)
        for key in ("matched/forget", "matched/approximate"):
            out[key] = take(stream, budgets[key])
            _check_filled(domain, key, out[key], budgets[key], len(first))
        remaining = list(stream)
        out["retain"] = take(iter(remaining + rest), budgets["retain"])
        _check_filled(
            domain, "retain", out["retain"], budgets["retain"], len(remaining) + len(rest)
        )
    return {k: sorted(out[k], key=lambda d: d.id) for k in budgets}


HELDOUT = "heldout"
"""The key of the held-out retain split: retain documents in pre-training that no method
trains on (retain utility is measured on them, never on the regulariser's own chunks)."""


def hold_out(retain: list[Document], share: float, seed: int) -> tuple[list, list]:
    """``retain`` cut by document into (regulariser, held-out): ``round(share x n)``
    documents drawn at random (seeded) are held out, the rest stay the regularised
    methods' retain stream. Both parts are in pre-training."""
    docs = sorted(retain, key=lambda d: d.id)
    n = round(share * len(docs))
    if share and not 0 < n < len(docs):
        raise SplitError(
            f"heldout_share {share} of {len(docs)} retain documents leaves "
            f"{n} held out and {len(docs) - n} to regularise; both need at least one"
        )
    picked = set(random.Random(seed + 7).sample(range(len(docs)), n))
    return (
        [d for i, d in enumerate(docs) if i not in picked],
        [d for i, d in enumerate(docs) if i in picked],
    )


def domain_splits(domain: str, profile: Profile) -> dict[str, list[Document]]:
    """Every split of ``domain`` as ``profile`` has it (:func:`split_domain` of its data
    part and seed)."""
    return split_domain(domain, profile.data, profile.seed)


def split_domain(domain: str, data: DataConfig, seed: int) -> dict[str, list[Document]]:
    """The data stage: every split of ``domain`` under both designs (keys of
    :func:`split_budgets`, the retain set cut into ``retain``, the regulariser, and
    :data:`HELDOUT` when the ``data`` part holds some out), from our sources, cached under
    ``<home>/data``; or the paper's hub dataset (one design, ``matched``) when the data
    part names it."""
    splits = _domain_splits(domain, data, seed)
    if domain != "general" and data.heldout_share:
        splits["retain"], splits[HELDOUT] = hold_out(splits["retain"], data.heldout_share, seed)
    return splits


def _domain_splits(domain: str, data: DataConfig, seed: int) -> dict[str, list[Document]]:
    check_choice("domain", domain, ALL_DOMAINS)
    if data.dataset != "local":
        hub = {s: hub_documents(domain, s, data.dataset) for s in splits_of(domain)}
        if domain == "general":
            return hub
        return {
            "matched/forget": hub["forget"],
            "matched/approximate": hub["approximate"],
            "retain": hub["retain"],
        }
    budgets, bounded = split_budgets(domain, data), document_bounds(data, domain)
    digests, docs = {s.__name__: _source_digest(s) for s in SOURCES[domain]}, None
    if None in digests.values():
        docs, digests = domain_documents(domain)
    key = config_hash(
        {
            "domain": domain,
            "sources": digests,
            "budgets": budgets,
            "bounds": [bounded.min_doc_chars, bounded.max_doc_chars],
            **({"passages": bounded.passage_chars} if bounded.passage_chars else {}),
            "seed": seed,
            "pins": SHIFTED_PINS.get(domain),
            "pool": MATCHED_POOL.get(domain),
            "code": stage_digest("data"),  # an edited corpus or source module: new splits
        }
    )
    path = home() / "data" / f"{domain}-{key}.json"
    seen = _SPLITS.get(path)
    if seen is None or seen[0] != _file_state(path):  # read or split once per process
        cached = _load_verified(path)
        if cached is not None:
            splits = {s: [Document(**d) for d in cached[s]] for s in budgets}
        else:
            if docs is None:
                docs, _ = domain_documents(domain)
            splits = split_documents(
                docs, data, seed, domain, SHIFTED_PINS.get(domain), MATCHED_POOL.get(domain)
            )
            _save_verified(path, {s: [d.__dict__ for d in v] for s, v in splits.items()})
        _SPLITS[path] = (_file_state(path), splits)
    return {s: list(v) for s, v in _SPLITS[path][1].items()}  # the lists are the caller's


_SPLITS: dict = {}
"""Each split file read (or built) in this process, by path, with the file's size and
modification time when it was read: a domain's corpus is split or read once per process
however many stages ask for it, and read again (and verified) only if the file changed on
disk. Documents are frozen; each caller gets its own lists."""


def _file_state(path: Path):
    """A file's (size, modification time in ns), or None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def load_splits(
    domain: str, profile: Profile, design: str | None = None
) -> dict[str, list[Document]]:
    """The splits of ``domain`` as an unlearning run sees them (:func:`design_splits` of
    :func:`domain_splits`, ``design`` by default the profile's)."""
    design = check_choice("design", design or profile.design, DESIGNS)
    return design_splits(domain_splits(domain, profile), domain, design, profile.dataset)


def design_splits(joint: dict, domain: str, design: str, dataset: str = "local") -> dict:
    """Of a domain's splits under both designs (``joint``: :func:`domain_splits`), those an
    unlearning run sees: ``forget``, ``retain`` (the regulariser), ``approximate`` of
    ``design`` and :data:`HELDOUT` when retain documents are held out; for general,
    ``evaluation`` and ``retain``. A design the ``dataset`` lacks is a ``ValueError``."""
    if domain == "general":
        return joint
    if f"{design}/forget" not in joint:
        raise ValueError(
            f"dataset {dataset!r} has one split design ('matched'); "
            f"design {design!r} needs dataset='local'"
        )
    return {
        "forget": joint[f"{design}/forget"],
        "retain": joint["retain"],
        "approximate": joint[f"{design}/approximate"],
        **({HELDOUT: joint[HELDOUT]} if HELDOUT in joint else {}),
    }


def all_splits(profile: Profile) -> dict[str, dict[str, list[Document]]]:
    """Every domain's and general's splits under both designs: domain -> :func:`domain_splits`."""
    return {domain: domain_splits(domain, profile) for domain in ALL_DOMAINS}


def frozen_splits(splits: dict[str, dict[str, list[Document]]]) -> tuple:
    """``{name: {split: documents}}`` as nested tuples, hashable (a stage's inputs are keys
    of :func:`~llmunlearn.runs.once`); :func:`thawed_splits` gives it back."""
    return tuple((name, tuple((s, tuple(v)) for s, v in sp.items())) for name, sp in splits.items())


def thawed_splits(frozen: tuple) -> dict[str, dict[str, list[Document]]]:
    """The mapping of :func:`frozen_splits` again (fresh lists: the caller's)."""
    return {name: {s: list(v) for s, v in sp} for name, sp in frozen}


def training_documents(splits: dict) -> list[Document]:
    """D of :func:`all_splits`: every domain's forget sets (both designs) and retain set,
    plus general/retain. No approximate set and no general/evaluation document is in it."""
    return [
        d
        for domain in ALL_DOMAINS
        for key, docs in splits[domain].items()
        if key in ("retain", HELDOUT) or key.endswith("/forget")
        for d in docs
    ]


def pretraining_documents(profile: Profile) -> list[Document]:
    """D of the profile (:func:`training_documents`)."""
    return training_documents(all_splits(profile))


def tokenizer_documents(splits: dict) -> list[Document]:
    """What the tokenizer is trained on, of :func:`all_splits`: D minus every forget set
    (every retain set and general/retain), so no model of the zoo has a token made for
    forget text."""
    return [
        d
        for domain in ALL_DOMAINS
        for key, docs in splits[domain].items()
        if key in ("retain", HELDOUT)
        for d in docs
    ]


def forget_document_ids(splits: dict) -> set[str]:
    """The ids of every forget document of every domain and design of :func:`all_splits`:
    what the original model has seen that some retrained model has not."""
    return {
        d.id
        for domain in DOMAINS
        for key, docs in splits[domain].items()
        if key.endswith("/forget")
        for d in docs
    }


def forget_documents(profile: Profile, domain: str, design: str) -> list[Document]:
    """The forget set that ``domain``'s exact retrained model for ``design`` leaves out."""
    return load_splits(domain, profile, design)["forget"]


def _source_digest(source) -> str | None:
    side = home() / "sources" / f"{source.__name__}.sha256"
    return side.read_text().strip() if side.exists() else None


def manifest_rows(splits: dict[str, list[Document]]) -> list[dict]:
    """One manifest row per document of ``splits``: id, split, group, source package and
    version, licence, sha256 and length."""
    return [
        {
            "id": d.id,
            "split": s,
            "group": d.group,
            "source": d.source,
            "license": d.license,
            "sha256": d.sha256,
            "characters": len(d.text),
        }
        for s, v in splits.items()
        for d in v
    ]


def build_corpus(profile: Profile, domains=ALL_DOMAINS, progress=print) -> Path:
    """Fetch and split every domain, and write the manifest; returns its path.

    The manifest records for every document its domain, split, group, source package and
    version, licence and sha256, plus counts per split. A domain whose source cannot be
    fetched is recorded under ``errors`` and the other domains still build; the function
    then raises :class:`SourceUnavailable` after writing the manifest.
    """

    manifest = {"profile": profile.name, "domains": {}, "errors": {}}
    for domain in domains:
        t0 = time.perf_counter()
        try:
            splits = domain_splits(domain, profile)
        except SourceUnavailable as e:
            manifest["errors"][domain] = str(e)
            progress(f"{domain:<8} FAILED: {e}")
            continue
        manifest["domains"][domain] = {
            "counts": {
                s: {
                    "documents": len(v),
                    "characters": sum(len(d.text) for d in v),
                    "groups": len({d.group for d in v}),
                }
                for s, v in splits.items()
            },
            "documents": manifest_rows(splits),
        }
        counts = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
        progress(f"{domain:<8} {counts} documents ({time.perf_counter() - t0:.1f} s)")
    path = home() / "data" / f"manifest-{profile.name}.json"
    write_json(path, manifest)
    if manifest["errors"]:
        raise SourceUnavailable(
            f"{len(manifest['errors'])} domain(s) could not be built "
            f"(see {path}):\n" + "\n".join(manifest["errors"].values())
        )
    return path


# ------------------------------------------------------------- the paper's dataset --
def hub_documents(domain: str, split: str, repo: str = HUB_DATASET) -> list[Document]:
    """Documents of the paper's dataset (``load_dataset(repo, domain, split=split)``).

    ``repo`` is a hub id or a local folder of the same layout. The ``general`` config's
    text column is ``content``; it is renamed to ``text`` as everywhere else. The paper
    released no books config.
    """

    if domain == "books":
        raise ValueError(
            f"{repo} has no 'books' config (the paper never released one); "
            "use a profile with dataset='local' for books"
        )
    check_choice(f"split of {domain}", split, splits_of(domain))
    ds = datasets.load_dataset(repo, domain, split=split)
    if "content" in ds.column_names and "text" not in ds.column_names:
        ds = ds.rename_column("content", "text")
    return [
        Document(
            f"{domain}/{split}/{i:05d}",
            t,
            f"{domain}/{split}/{i:05d}",
            f"{repo} ({domain}/{split})",
            "Apache-2.0",
        )
        for i, t in enumerate(ds["text"])
    ]


# ------------------------------------------------------------------------- chunking --
def chunk_token_ids(ids: list[int], chunk_len: int) -> list[list[int]]:
    """Consecutive non-overlapping chunks of ``chunk_len``; short tails (< 5) dropped."""
    chunks = [ids[i : i + chunk_len] for i in range(0, len(ids), chunk_len)]
    return [c for c in chunks if len(c) >= MIN_CHUNK_TOKENS]


def chunk_documents(tokenizer, docs: list[Document], chunk_len: int):
    """Tokenise whole documents (no BOS/EOS) and chunk them as the paper.

    Returns a ``datasets.Dataset`` with ``input_ids``, ``attention_mask``, ``labels``
    (``[chunk_len]`` each, right-padded; labels ``-100`` on padding) and ``doc_id``.
    """

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
        "torch", columns=["input_ids", "attention_mask", "labels"], output_all_columns=True
    )


def document_table(profile: Profile, tokenizer):
    """One row per document of every domain and split (both designs, keys of
    :func:`split_budgets`): domain, split, id, group, source, licence, characters, tokens
    and chunks (as :func:`chunk_documents` cuts them)."""

    rows = []
    for domain in ALL_DOMAINS:
        for split, docs in domain_splits(domain, profile).items():
            ids = tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]
            for d, toks in zip(docs, ids):
                rows.append(
                    {
                        "domain": domain,
                        "split": split,
                        "id": d.id,
                        "group": d.group,
                        "source": d.source,
                        "license": d.license,
                        "characters": len(d.text),
                        "tokens": len(toks),
                        "chunks": len(chunk_token_ids(toks, profile.chunk_len)),
                    }
                )
    return pd.DataFrame(rows)


def sample_indices(total: int, n: int, seed: int) -> list[int]:
    """At most ``n`` of ``range(total)``, the same ones every time (seeded), sorted."""
    if total <= n:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), n))


def chunk_texts(tokenizer, chunks) -> list[str]:
    """The text of each chunk (its tokens decoded, padding left out): what a classifier
    that never sees the model reads."""
    return tokenizer.batch_decode(
        [
            [t for t in ids if t != tokenizer.pad_token_id]
            for ids in chunks.with_format(None)["input_ids"]
        ]
    )


def fixed_sample(chunks, n: int, seed: int):
    """At most ``n`` chunks, the same ones every time (seeded), in their original order."""
    if len(chunks) <= n:
        return chunks
    return chunks.select(sample_indices(len(chunks), n, seed))


_CHUNKED: dict = {}
"""This process's :func:`chunk_splits`, newest last (at most :data:`_CHUNKED_MAX`)."""
_CHUNKED_MAX = 16


def _chunks_key(splits: dict, tokenizer, chunk_len: int) -> tuple | None:
    """What :func:`chunk_splits` returns depends on: every split's documents (ids and text
    digests, in order), the tokenizer's whole serialised vocabulary and rules with its pad
    token, and the chunk length (None for a tokenizer without a fast backend: not kept)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    cut = {"tokenizer": backend.to_str(), "pad": tokenizer.pad_token_id, "len": chunk_len}
    docs = {s: [(d.id, d.sha256) for d in v] for s, v in splits.items()}
    return config_hash(docs), config_hash(cut)


def chunk_splits(splits: dict[str, list[Document]], tokenizer, chunk_len: int) -> dict:
    """Every split of ``splits`` (split -> documents, as :func:`load_splits` gives them),
    chunked with ``tokenizer`` into chunks of ``chunk_len`` tokens.

    Kept in this process per :func:`_chunks_key`: the grid loads the same chunks for every
    run, and tokenising them again cost about a third of a second per run on ``cpu``. The
    datasets are shared between callers, so a caller derives new ones (``map``,
    ``select``, ``with_format``) and never changes one in place (``set_format``)."""
    key = _chunks_key(splits, tokenizer, chunk_len)
    if key not in _CHUNKED:
        out = {s: chunk_documents(tokenizer, docs, chunk_len) for s, docs in splits.items()}
        if key is None:
            return out
        _CHUNKED[key] = out
        while len(_CHUNKED) > _CHUNKED_MAX:
            del _CHUNKED[next(iter(_CHUNKED))]
    return dict(_CHUNKED[key])


def chunked_splits(profile: Profile, domain: str, tokenizer) -> dict:
    """Every split of ``domain`` (or ``general``) as the profile has it, chunked with
    ``tokenizer`` (:func:`chunk_splits`)."""
    return chunk_splits(load_splits(domain, profile), tokenizer, profile.chunk_len)


def domain_chunks(profile: Profile, domain: str, tokenizer) -> tuple[dict, dict]:
    """The domain's splits and the general splits, chunked with ``tokenizer``."""
    return chunked_splits(profile, domain, tokenizer), chunked_splits(profile, "general", tokenizer)
