import random

import pytest
import torch

import llmunlearn as ul
from llmunlearn.data.sources import MATCHED_POOL, SHIFTED_PINS, SOURCES, Document

# the real books design, kept before the fixtures replace it for the fake sources
REAL_BOOKS_PINS = dict(SHIFTED_PINS["books"])
REAL_BOOKS_POOL = tuple(MATCHED_POOL["books"])

WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an "
    "model data token train forget retain loss step learn rate value mean sum list "
    "def return class import self none true false if else for while yield"
).split()


def invented_name(rng: random.Random) -> str:
    """A made-up word of one document, like a character's name or an identifier
    (``qeltrawo``): a tokenizer that never saw it splits it into short pieces, one
    trained on its document merges it into tokens of its own."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))


def fake_source(domain: str, n_docs: int = 36):
    """Documents of made-up text in groups of three, standing in for a real source
    (tests never download packages). Each group also repeats a name of its own,
    as a novel does its characters' names, so a tokenizer trained on it learns them."""

    def source():
        rng = random.Random(domain)
        names = [invented_name(rng) for _ in range(n_docs // 3 + 1)]
        docs = []
        for i in range(n_docs):
            name = names[i // 3]
            words = [rng.choice(WORDS) for _ in range(rng.randint(80, 160))]
            for j in range(0, len(words), 8):
                words[j] = name
            docs.append(
                Document(f"{domain}/{i:03d}", " ".join(words), f"{domain}/g{i // 3}", "test", "CC0")
            )
        return docs

    source.__name__ = f"fake_{domain}"
    return source


def fake_sources(patch=None):
    """Replace every real source with a fake one (``patch`` is pytest's monkeypatch;
    without it, for subprocesses, the registries are changed in place)."""
    setitem = patch.setitem if patch else (lambda d, k, v: d.__setitem__(k, v))
    for domain in SOURCES:
        setitem(SOURCES, domain, (fake_source(domain),))
    setitem(
        SHIFTED_PINS,
        "books",
        {"forget": ("books/g0", "books/g1"), "approximate": ("books/g2", "books/g3")},
    )
    setitem(MATCHED_POOL, "books", tuple(f"books/g{i}" for i in range(4, 10)))


def tiny_profile():
    """A profile small enough that pre-training takes about a second."""
    return ul.get_profile(
        "smoke",
        forget_chars=1_500,
        retain_chars=3_000,
        approximate_chars=1_500,
        general_retain_chars=2_000,
        general_eval_chars=1_000,
        min_doc_chars=100,
        max_doc_chars=16_000,  # smoke's passages, and a longer paragraph kept whole
        general_doc_chars=(100, 16_000),
        vocab_size=512,
        chunk_len=32,
        d_model=32,
        n_layer=1,
        pretrain_epochs=2,
        unlearn_steps=4,
        eval_every=2,
        grid_eval_steps=(),  # evaluated every eval_every steps (the grid tests set steps)
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test writes under its own folder and reads fake sources."""
    monkeypatch.setenv("LLMUNLEARN_HOME", str(tmp_path / "home"))
    fake_sources(monkeypatch)
    torch.set_num_threads(2)
    return tmp_path / "home"


@pytest.fixture
def tiny():
    return tiny_profile()


@pytest.fixture
def docs():
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    return [
        Document(
            f"doc{i}",
            " ".join(words[(i + j) % len(words)] for j in range(60 + i)),
            f"group{i // 2}",
            "test",
            "CC0",
        )
        for i in range(12)
    ]
