"""The real-LLM chapter, tested offline: the injected design's pool (post-release code from
enough packages, split at random), the shifted contrast (the standard library against the
same approximate set), PyPI's dates, the continued original and its exact twin (which
never trains on a forget chunk), and the chapter's path end to end on a tiny Llama
standing in for SmolLM2."""

import io
import json
import random

import pytest

import llmunlearn as ul
from llmunlearn.data import sources
from llmunlearn.studies import real_llm
from llmunlearn.data.corpus import chunk_documents, load_splits
from llmunlearn.models import build_model, train_tokenizer
from llmunlearn.data.sources import Document, SourceUnavailable

from conftest import WORDS, fake_source


def new_code(first_release="2025-03-04", packages=21, n_docs=84):
    """Post-release modules of ``packages`` packages, paragraphs separated by blank lines
    (so they cut into passages, as real modules do)."""

    def post_release_python():
        rng = random.Random(first_release)
        docs = []
        for i in range(n_docs):
            pkg = f"pkg{i % packages:02d}"
            paras = [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 30))) + " async await"
                for _ in range(rng.randint(3, 6))
            ]
            docs.append(
                Document(
                    f"{pkg}/m{i:03d}.py",
                    "\n\n".join(paras),
                    f"{pkg}/{pkg}",
                    f"{pkg} 1.0 (first release {first_release}, this version {first_release})",
                    "MIT",
                )
            )
        return docs

    # each pool its own name: sources are cached by name (and pins)
    post_release_python.__name__ = f"post_release_python_{first_release}_{packages}_{n_docs}"
    return post_release_python


@pytest.fixture
def real_sources(monkeypatch):
    seen = fake_source("stdlib", 48)
    seen.__name__ = "debian_python_stdlib"
    monkeypatch.setattr(sources, "debian_python_stdlib", seen)
    monkeypatch.setattr(sources, "post_release_python", new_code())


def texts(p, split):
    return {d.text for d in load_splits("github", p)[split]}


def test_the_injected_splits_are_disjoint_draws_of_post_release_code(tiny, real_sources):
    folder = real_llm.real_llm_dataset(tiny, 2_000)
    p = ul.get_profile("smoke", dataset=str(folder))
    forget, retain, approx = (texts(p, s) for s in ("forget", "retain", "approximate"))
    assert forget and retain and approx
    assert not forget & retain and not forget & approx and not retain & approx
    manifest = json.loads((folder / "manifest.json").read_text())
    github = [d for d in manifest["documents"] if d["split"].startswith("github")]
    assert all("first release 2025-03-04" in d["source"] for d in github)
    assert len({d["group"] for d in github}) > 3  # drawn from many packages
    assert set(load_splits("general", p)) == {"evaluation", "retain"}


def test_the_shifted_contrast_keeps_the_approximate_set(tiny, real_sources):
    injected = ul.get_profile("smoke", dataset=str(real_llm.real_llm_dataset(tiny, 2_000)))
    shifted = ul.get_profile(
        "smoke", dataset=str(real_llm.real_llm_dataset(tiny, 2_000, "shifted"))
    )
    assert texts(shifted, "approximate") == texts(injected, "approximate")
    assert all("async await" not in t for t in texts(shifted, "forget"))  # stdlib stand-in
    manifest = json.loads(
        (__import__("pathlib").Path(shifted.dataset) / "manifest.json").read_text()
    )
    assert manifest["design"] == "shifted"
    assert not any(
        "first release" in d["source"]
        for d in manifest["documents"]
        if d["split"] == "github/forget"
    )


def test_bad_pools_and_designs_are_named_before_anything_is_written(tiny, monkeypatch):
    monkeypatch.setattr(sources, "debian_python_stdlib", fake_source("stdlib", 48))
    monkeypatch.setattr(sources, "post_release_python", new_code("2023-06-01"))
    with pytest.raises(ValueError, match="not known to be first published after"):
        real_llm.real_llm_dataset(tiny, 2_000)
    monkeypatch.setattr(sources, "post_release_python", new_code(packages=5))
    with pytest.raises(ValueError, match="from 5 packages .* needs at least 20"):
        real_llm.real_llm_dataset(tiny, 2_000)
    monkeypatch.setattr(sources, "post_release_python", new_code(n_docs=21))
    with pytest.raises(ValueError, match="it needs 50,000 characters"):
        real_llm.real_llm_dataset(tiny, 50_000)
    with pytest.raises(ValueError, match="unknown real-LLM design 'mixed'"):
        real_llm.real_llm_dataset(tiny, 2_000, "mixed")
    assert not list((ul.home() / "datasets").glob("real-llm-*"))


def test_pypi_dates_read_the_first_upload(monkeypatch):
    payload = {
        "info": {"license_expression": None, "license": "MIT"},
        "releases": {
            "0.1": [{"upload_time_iso_8601": "2025-03-04T18:16:20Z"}],
            "0.2": [
                {"upload_time_iso_8601": "2025-04-01T10:00:00Z"},
                {"upload_time_iso_8601": "2025-03-30T10:00:00Z"},
            ],
            "0.3": [],
        },
    }
    monkeypatch.setattr(
        "urllib.request.urlopen", lambda url, timeout: io.BytesIO(json.dumps(payload).encode())
    )
    assert sources.pypi_dates("pkg", "0.2") == {
        "first_release": "2025-03-04",
        "version_release": "2025-03-30",
        "license": "MIT",
    }
    with pytest.raises(SourceUnavailable, match="no files for pkg==0.3"):
        sources.pypi_dates("pkg", "0.3")


@pytest.fixture
def tiny_base(tiny, real_sources, docs, tmp_path, monkeypatch):
    tok = train_tokenizer([d.text for d in docs] + [d.text for d in new_code()()], 300)
    model = build_model(tiny.model, len(tok), seed=0)
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    monkeypatch.setattr("llmunlearn.models.smollm2", lambda: tmp_path / "base")
    return tmp_path / "base"


def test_the_twin_never_trains_on_a_forget_token(tiny, tiny_base):
    """The continuation's original and twin on the tokens: the twin's trained chunks
    are the original's, in the same order, with every forget chunk replaced by a retain or
    general chunk (the same number of steps), and none of them holds a forget chunk's
    tokens."""
    from llmunlearn.models import load_model

    p = real_llm.real_llm_profile(tiny, chars=2_000, steps=2, lr=1e-3)
    zoo = real_llm.real_llm_zoo(p, progress=False)
    o, t = zoo["original"].summary, zoo["retrained-github"].summary
    forget_ids = {d.id for d in load_splits("github", p)["forget"]}
    assert set(o["order_doc_ids"]) & forget_ids  # the original trains on forget chunks
    assert not set(t["order_doc_ids"]) & forget_ids
    assert len(t["order"]) == len(o["order"]) and t["steps"] == o["steps"]
    for a, b, d in zip(o["order"], t["order"], o["order_doc_ids"]):
        assert (a == b) == (d not in forget_ids)  # the original's order, forget replaced
    _, tok = load_model(tiny_base)
    forget = chunk_documents(tok, load_splits("github", p)["forget"], p.chunk_len)
    rows = {tuple(r) for r in forget.with_format(None)["input_ids"]}
    trained = real_llm.continuation_chunks(p, tok).with_format(None)["input_ids"]
    seen = {tuple(trained[i]) for i in t["order"]}
    assert not rows & seen
    assert t["trained_forget_chunks"] == 0
    assert len(forget) - 4 < o["trained_forget_chunks"] <= len(forget)  # but a last part batch
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        real_llm.continued(p, repeats=0)
    with pytest.raises(ValueError, match=r"unknown continuation settings \['epochs'\]"):
        real_llm.continued(p, epochs=2)


def test_the_chapter_path_on_a_tiny_base_model(tiny, tiny_base):
    study = real_llm.real_llm_study(
        tiny, ["ga", "npo"], chars=2_000, steps=2, lr=1e-3, progress=False
    )
    p, table = study["profile"], study["table"]
    assert p.eval_every == 2  # at the end
    assert list(table.index) == ["original", "twin", "ga", "npo"]
    assert table.loc["ga", "forget"] > table.loc["original", "forget"]  # GA ascends
    assert table.loc["twin", "forget / twin"] == pytest.approx(1.0)
    assert table["battery acc"].drop("twin").between(0, 1).all()
    mem = study["membership"]
    assert set(mem.index) == {
        ("injected", "original"),
        ("injected", "twin"),
        ("shifted", "SmolLM2"),
    }
    assert mem["blind AUC"].between(0, 1).all() and mem["Min-K% AUC"].between(0, 1).all()
    quant = study["quantisation"]
    assert set(quant["bits"]) == {32, 4} and "same_as_base" in quant
    assert set(study["twin"]) >= {"M", "R", "auc_original", "auc_twin"}
    with pytest.raises(ValueError, match="steps must be"):
        real_llm.real_llm_profile(tiny, steps=0)
    with pytest.raises(ValueError, match="unknown method 'gaa'"):
        real_llm.real_llm_study(tiny, ["gaa"])
