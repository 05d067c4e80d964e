import random

import pytest
import torch

import llmunlearn as ul
from llmunlearn.sources import PINNED_GROUPS, SOURCES, Document

WORDS = ("the of and to in is that for it as with was on be by this are from at or an "
         "model data token train forget retain loss step learn rate value mean sum list "
         "def return class import self none true false if else for while yield").split()


def fake_source(domain: str, n_docs: int = 24):
    """Documents of made-up text in groups of three, standing in for a real source
    (tests never download packages)."""
    def source():
        rng = random.Random(domain)
        return [Document(f"{domain}/{i:03d}", " ".join(rng.choice(WORDS) for _ in range(
            rng.randint(80, 160))), f"{domain}/g{i // 3}", "test", "CC0")
            for i in range(n_docs)]
    source.__name__ = f"fake_{domain}"
    return source


def fake_sources(patch=None):
    """Replace every real source with a fake one (``patch`` is pytest's monkeypatch;
    without it, for subprocesses, the registries are changed in place)."""
    setitem = patch.setitem if patch else (lambda d, k, v: d.__setitem__(k, v))
    for domain in SOURCES:
        setitem(SOURCES, domain, (fake_source(domain),))
    setitem(PINNED_GROUPS, "books", {"forget": ("books/g0", "books/g1"),
                                     "approximate": ("books/g2", "books/g3")})


def tiny_profile():
    """A profile small enough that pre-training takes about a second."""
    return ul.get_profile("smoke", forget_chars=1_500, retain_chars=3_000,
                          approximate_chars=1_500, general_retain_chars=2_000,
                          general_eval_chars=1_000, min_doc_chars=100, vocab_size=512,
                          chunk_len=32, d_model=32, n_layer=1, pretrain_epochs=2,
                          unlearn_steps=4, eval_every=2)


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
    return [Document(f"doc{i}", " ".join(words[(i + j) % len(words)] for j in range(60 + i)),
                     f"group{i // 2}", "test", "CC0") for i in range(12)]
