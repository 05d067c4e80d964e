import pytest
import torch

import llmunlearn as ul
from llmunlearn.data import Document


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test writes its runs and data under its own temporary folder."""
    monkeypatch.setenv("LLMUNLEARN_HOME", str(tmp_path / "home"))
    torch.set_num_threads(2)
    return tmp_path / "home"


@pytest.fixture
def tiny():
    """A profile small enough that pre-training takes about a second."""
    return ul.get_profile("smoke", n_forget=3, n_retain=6, n_approximate=3, vocab_size=512,
                          chunk_len=32, d_model=32, n_layer=1, pretrain_epochs=2,
                          unlearn_steps=4, eval_every=2)


@pytest.fixture
def docs():
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    return [Document(f"doc{i}", " ".join(words[(i + j) % len(words)] for j in range(60 + i)),
                     "test", "CC0") for i in range(12)]
