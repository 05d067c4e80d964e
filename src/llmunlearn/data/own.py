"""Your text: forget, retain, approximate and general sets from your own files (issue 36).

A set is given as a PATH, one of

- a folder of text files, one document each (every file below it, in name order; a file
  that is not UTF-8 text is an error naming it);
- a JSONL file (``*.jsonl``) whose every line is an object with a ``text`` field (an ``id``
  field, where present, names the document);
- a saved ``datasets`` folder (``Dataset.save_to_disk``) with a ``text`` column, or a hub
  dataset id (``owner/name``, its ``train`` split; ``owner/name:split`` for another).

:func:`own_dataset` writes the sets in the paper's hub layout (configs ``github`` and
``general``, one parquet file per split, as :func:`~llmunlearn.data.corpus.hub_documents`
reads), with a manifest (per document its set, id, sha256 and length): every command then
reads your sets as it reads the paper's dataset, under the domain name ``github``
(:data:`OWN_DOMAIN`; the runner treats every domain alike). Without a general set, the
book's own general text (offline, :mod:`llmunlearn.data.sources`) stands in.

Every check runs before anything is written: a missing or empty PATH, a file that is not
text, a JSONL line without ``text``, an empty set, and the same document (by sha256) in
forget and approximate or forget and retain are errors naming the value.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from ..runs import config_hash, folder_written, home
from .corpus import manifest_rows
from .sources import Document

OWN_DOMAIN = "github"
"""The domain name your sets travel under (the hub layout's config): the paper's code domain,
whose split names (forget, retain, approximate) every command reads."""

LICENCE = "yours (not recorded)"


def read_documents(path: str | Path, name: str = "set") -> list[Document]:
    """The documents at ``path`` (see the module's docstring for the forms); ``name`` (the
    set's) appears in every error. Whitespace-only documents are dropped; none left is a
    ``ValueError``."""
    text_path = str(path)
    p = Path(text_path).expanduser()
    if p.is_dir() and (p / "dataset_info.json").exists():
        docs = _from_datasets(p, name)
    elif p.is_dir():
        docs = _from_folder(p, name)
    elif p.is_file():
        if p.suffix not in (".jsonl", ".json"):
            raise ValueError(
                f"{name} {text_path!r} is a file with suffix {p.suffix!r}: a file must be "
                "JSONL (.jsonl, one object with a 'text' field per line); give a folder for "
                "text files, one document each"
            )
        docs = _from_jsonl(p, name)
    elif "/" in text_path and not text_path.startswith((".", "/", "~")):
        docs = _from_hub(text_path, name)
    else:
        raise FileNotFoundError(
            f"{name} {text_path!r} does not exist: give a folder of text files, a JSONL "
            "file, a saved datasets folder or a hub dataset id (owner/name)"
        )
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise ValueError(f"{name} {text_path!r} holds no document with text")
    return docs


def _doc(doc_id: str, text: str, source: str) -> Document:
    return Document(doc_id, text, doc_id, source, LICENCE)


def _from_folder(p: Path, name: str) -> list[Document]:
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    if not files:
        raise ValueError(f"{name} folder {str(p)!r} is empty: put one text file per document")
    docs = []
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{name}: {str(f)!r} is not UTF-8 text; a folder holds one text file per "
                "document (remove or convert the file)"
            ) from None
        if "\x00" in text:
            raise ValueError(f"{name}: {str(f)!r} is binary (NUL bytes), not a text document")
        docs.append(_doc(f.relative_to(p).as_posix(), text, str(p)))
    return docs


def _from_jsonl(p: Path, name: str) -> list[Document]:
    docs = []
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{name}: {str(p)!r} line {i} is not JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(
                    f"{name}: {str(p)!r} line {i} has no string field 'text' (every line "
                    "must be an object with one)"
                )
            docs.append(_doc(str(row.get("id", f"{p.stem}/{i:06d}")), row["text"], str(p)))
    return docs


def _text_column(ds, where: str, name: str) -> list[str]:
    if "text" not in ds.column_names:
        raise ValueError(
            f"{name}: {where} has no 'text' column (columns: {', '.join(ds.column_names)})"
        )
    return list(ds["text"])


def _from_datasets(p: Path, name: str) -> list[Document]:

    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(
            f"{name}: {str(p)!r} is a DatasetDict ({', '.join(ds)}): save one split "
            "(ds['train'].save_to_disk(...))"
        )
    return [
        _doc(f"{p.name}/{i:06d}", t, str(p)) for i, t in enumerate(_text_column(ds, str(p), name))
    ]


def _from_hub(repo: str, name: str) -> list[Document]:

    repo_id, _, split = repo.partition(":")
    ds = datasets.load_dataset(repo_id, split=split or "train")
    return [_doc(f"{repo}/{i:06d}", t, repo) for i, t in enumerate(_text_column(ds, repo, name))]


def check_disjoint(sets: dict[str, list[Document]]) -> None:
    """A ``ValueError`` naming the documents that sit in forget and in approximate or retain
    (the same text, by sha256): a non-member or a retained document that is also a member
    makes every number about the forget set meaningless."""
    forget = {d.sha256: d.id for d in sets["forget"]}
    for other in ("approximate", "retain"):
        both = [(forget[d.sha256], d.id) for d in sets.get(other, []) if d.sha256 in forget]
        if both:
            shown = ", ".join(f"{a!r} = {b!r}" for a, b in both[:3])
            raise ValueError(
                f"{len(both)} document(s) of forget are also in {other} ({shown}"
                f"{', ...' if len(both) > 3 else ''}): the sets must not share a document"
            )


def own_sets(forget, approximate, retain=None, general=None) -> dict[str, list[Document]]:
    """Every given set read (:func:`read_documents`) and checked (:func:`check_disjoint`);
    sets given as ``None`` are absent."""
    given = {"forget": forget, "retain": retain, "approximate": approximate, "general": general}
    sets = {k: read_documents(v, k) for k, v in given.items() if v is not None}
    check_disjoint(sets)
    return sets


def general_splits(docs: list[Document], seed: int) -> dict[str, list[Document]]:
    """A general set cut in two (seeded): ``retain`` (what the general regularisers train
    on) and ``evaluation`` (general utility), as the paper's general config."""
    if len(docs) < 2:
        raise ValueError(f"general holds {len(docs)} document: give at least 2")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    half = len(docs) // 2
    return {
        "retain": [docs[i] for i in order[:half]],
        "evaluation": [docs[i] for i in order[half:]],
    }


def own_dataset(sets: dict[str, list[Document]], general: dict[str, list[Document]]) -> Path:
    """The folder of ``sets`` (forget, retain, approximate) and ``general`` (retain,
    evaluation) in the paper's hub layout (:func:`write_hub_layout`)."""
    splits = {f"{OWN_DOMAIN}/{s}": sets[s] for s in ("forget", "retain", "approximate")}
    splits.update({f"general/{s}": v for s, v in general.items()})
    return write_hub_layout("own", splits, {})


def write_hub_layout(prefix: str, splits: dict[str, list[Document]], manifest: dict) -> Path:
    """``splits`` (``"<config>/<split>"`` -> documents) written in the paper's hub layout
    under ``<home>/datasets/<prefix>-<digest of the documents>``: one parquet file per
    split (column ``text``; ``content`` in the general config, as the paper's dataset), a
    ``README.md`` naming the configs, and ``manifest.json`` (``manifest`` plus one row per
    document). Built once: written to a ``.partial`` folder and renamed when whole."""

    key = config_hash({k: [d.sha256 for d in v] for k, v in splits.items()})
    root = home() / "datasets" / f"{prefix}-{key}"
    if (root / "manifest.json").exists():
        return root
    with folder_written(root) as partial:
        yaml = ["---", "configs:"]
        for config in dict.fromkeys(k.split("/", 1)[0] for k in splits):
            yaml.append(f"- config_name: {config}\n  data_files:")
            column = "content" if config == "general" else "text"
            for name, docs in splits.items():
                if not name.startswith(config + "/"):
                    continue
                split = name.split("/", 1)[1]
                path = partial / config / f"{split}-00000-of-00001.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.table({column: [d.text for d in docs]}), path)
                yaml.append(f"  - split: {split}\n    path: {config}/{split}-*.parquet")
        (partial / "README.md").write_text("\n".join([*yaml, "---", ""]))
        body = {**manifest, "documents": manifest_rows(splits)}
        (partial / "manifest.json").write_text(json.dumps(body, indent=1))
    return root
