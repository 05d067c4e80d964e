import json

import pytest

from llmunlearn.config import IGNORE_INDEX
from llmunlearn.data import (build_corpus, chunk_documents, chunk_token_ids, load_splits,
                             split_documents)
from llmunlearn.models import train_tokenizer
from llmunlearn.sources import Document, SourceUnavailable, SOURCES


def test_chunks_are_consecutive_non_overlapping_and_short_tails_dropped():
    ids = list(range(23))
    assert chunk_token_ids(ids, 10) == [list(range(10)), list(range(10, 20))]  # tail of 3
    assert chunk_token_ids(list(range(25)), 10)[-1] == list(range(20, 25))  # tail of 5 kept
    assert chunk_token_ids([1, 2, 3, 4], 10) == []


def test_chunk_documents_follows_the_paper(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    ds = chunk_documents(tok, docs[:2], chunk_len=16)
    first = tok(docs[0].text, add_special_tokens=False)["input_ids"]
    assert ds[0]["input_ids"].tolist() == first[:16]  # no BOS: the document starts the chunk
    assert ds[0]["doc_id"] == "doc0"
    for r in ds:
        pad = r["attention_mask"] == 0
        assert (r["labels"][pad] == IGNORE_INDEX).all()
        assert (r["labels"][~pad] == r["input_ids"][~pad]).all()
        assert int((~pad).sum()) >= 5
    doc0 = [r for r in ds if r["doc_id"] == "doc0"]  # chunks tile the document in order
    joined = sum((r["input_ids"][r["attention_mask"] == 1].tolist() for r in doc0), [])
    assert joined == first[:len(joined)] and len(first) - len(joined) < 5


def test_tokenizer_round_trips_text(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    text = "def f(x):\n    return x ** 2  # ünïcödé"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


BUDGETS = {"forget": 900, "approximate": 900, "retain": 1500}


def test_splits_keep_groups_together_drop_duplicates_and_are_deterministic(tiny, docs):
    dup = Document("copy-of-doc0", docs[0].text, "another-group", "test", "CC0")
    p = tiny.__class__(**{**tiny.__dict__, "min_doc_chars": 0})
    a = split_documents(docs + [dup], BUDGETS, p)
    b = split_documents(list(reversed(docs + [dup])), BUDGETS, p)
    assert {s: [d.id for d in v] for s, v in a.items()} == \
        {s: [d.id for d in v] for s, v in b.items()}
    shas = [d.sha256 for v in a.values() for d in v]
    assert len(shas) == len(set(shas))  # no text in two splits
    groups = {s: {d.group for d in v} for s, v in a.items()}
    assert not (groups["forget"] & groups["retain"]) and not \
        (groups["forget"] & groups["approximate"]) and not \
        (groups["retain"] & groups["approximate"])
    for split, budget in BUDGETS.items():
        assert sum(len(d.text) for d in a[split]) >= budget


def test_pinned_groups_feed_only_their_split(tiny, docs):
    p = tiny.__class__(**{**tiny.__dict__, "min_doc_chars": 0})
    out = split_documents(docs, {"forget": 300, "approximate": 300, "retain": 600}, p,
                          pinned={"forget": ("group1",), "approximate": ("group2",)})
    assert {d.group for d in out["forget"]} == {"group1"}
    assert {d.group for d in out["approximate"]} == {"group2"}
    assert not {d.group for d in out["retain"]} & {"group1", "group2"}


def test_split_too_small_names_split_size_and_need(tiny, docs):
    with pytest.raises(ValueError, match=r"split 'retain' has [\d,]+ characters but profile "
                                         r"'smoke' needs 100,000"):
        split_documents(docs, {"forget": 300, "approximate": 300, "retain": 100_000},
                        tiny.__class__(**{**tiny.__dict__, "min_doc_chars": 0}))


def test_corpus_manifest_records_every_document(tiny):
    path = build_corpus(tiny, progress=lambda msg: None)
    manifest = json.loads(path.read_text())
    assert set(manifest["domains"]) == {"arxiv", "github", "books", "general"}
    github = manifest["domains"]["github"]
    assert set(github["counts"]) == {"forget", "approximate", "retain"}
    assert len(github["documents"]) == sum(c["documents"] for c in github["counts"].values())
    assert all(len(d["sha256"]) == 64 and d["license"] and d["source"]
               for d in github["documents"])
    assert set(manifest["domains"]["general"]["counts"]) == {"evaluation", "retain"}


def test_a_failing_source_is_named_and_the_other_domains_still_build(tiny, monkeypatch):
    def broken():
        raise SourceUnavailable("could not download Debian package 'r-cran-zoo'; "
                                "fetch it by hand with: apt-get download r-cran-zoo")
    monkeypatch.setitem(SOURCES, "arxiv", (broken,))
    with pytest.raises(SourceUnavailable, match="r-cran-zoo"):
        build_corpus(tiny, progress=lambda msg: None)
    manifest = json.loads(next((tiny and __import__("llmunlearn").home() / "data")
                               .glob("manifest-*.json")).read_text())
    assert "arxiv" in manifest["errors"] and "github" in manifest["domains"]


def test_a_corrupted_cache_file_is_rebuilt_not_used(tiny):
    first = load_splits("github", tiny)
    from llmunlearn.runs import home
    cache = next((home() / "data").glob("github-*.json"))
    cache.write_text(cache.read_text().replace("github/", "tampered/"))
    with pytest.warns(UserWarning, match="does not match its sha256"):
        again = load_splits("github", tiny)
    assert [d.id for d in again["forget"]] == [d.id for d in first["forget"]]
