import pytest

from llmunlearn.core import IGNORE_INDEX
from llmunlearn.data import Document, chunk_documents, chunk_token_ids, split_documents
from llmunlearn.models import train_tokenizer


def test_chunks_are_consecutive_non_overlapping_and_short_tails_dropped():
    ids = list(range(23))
    assert chunk_token_ids(ids, 10) == [list(range(10)), list(range(10, 20))]  # tail of 3
    assert chunk_token_ids(list(range(25)), 10)[-1] == list(range(20, 25))  # tail of 5 kept
    assert chunk_token_ids([1, 2, 3, 4], 10) == []


def test_chunk_documents_follows_the_paper(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    ds = chunk_documents(tok, docs[:2], chunk_len=16)
    first = tok(docs[0].text, add_special_tokens=False)["input_ids"]
    row = ds[0]
    assert row["input_ids"].tolist() == first[:16]  # no BOS, document starts the chunk
    assert row["doc_id"] == "doc0"
    for r in ds:
        pad = r["attention_mask"] == 0
        assert (r["labels"][pad] == IGNORE_INDEX).all()
        assert (r["labels"][~pad] == r["input_ids"][~pad]).all()
        assert int((~pad).sum()) >= 5
    # chunks of one document tile it exactly
    doc0 = [r for r in ds if r["doc_id"] == "doc0"]
    joined = sum((r["input_ids"][r["attention_mask"] == 1].tolist() for r in doc0), [])
    assert joined == [c for c in first][:len(joined)]


def test_tokenizer_round_trips_text(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    text = "def f(x):\n    return x ** 2  # ünïcödé"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_splits_do_not_leak_and_are_deterministic(tiny, docs):
    dup = Document("copy-of-doc0", docs[0].text, "test", "CC0")
    p = tiny.__class__(**{**tiny.__dict__, "min_doc_chars": 0, "max_doc_chars": 10**6})
    a = split_documents(docs + [dup], p)
    b = split_documents(list(reversed(docs + [dup])), p)
    assert {s: [d.id for d in v] for s, v in a.items()} == \
        {s: [d.id for d in v] for s, v in b.items()}
    texts = [d.sha256 for v in a.values() for d in v]
    assert len(texts) == len(set(texts)) == p.n_forget + p.n_retain + p.n_approximate


def test_split_too_small_names_sizes(tiny, docs):
    with pytest.raises(ValueError, match="needs 120 documents.*only"):
        split_documents(docs, tiny.__class__(**{**tiny.__dict__, "n_retain": 114,
                                                 "min_doc_chars": 0}))
