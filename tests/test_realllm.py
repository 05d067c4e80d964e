"""The paper's setting on a real LLM, tested offline: the data folder (forget and retain
from seen code, approximate only from code first published after the model), PyPI's
dates, and the chapter's path end to end on a tiny Llama standing in for SmolLM2."""

import io
import json

import pytest

import llmunlearn as ul
from llmunlearn import realllm, sources
from llmunlearn.data import load_splits
from llmunlearn.models import build_model, train_tokenizer
from llmunlearn.sources import Document, SourceUnavailable

from conftest import fake_source


def new_code(first_release="2025-03-04"):
    def post_release_python():
        docs = fake_source("newcode", 24)()
        return [
            Document(
                d.id,
                d.text + " async await",
                d.group,
                f"newpkg 1.0 (first release {first_release}, this version {first_release})",
                "MIT",
            )
            for d in docs
        ]

    return post_release_python


@pytest.fixture
def real_sources(monkeypatch):
    seen = fake_source("stdlib", 48)
    seen.__name__ = "python_stdlib"
    monkeypatch.setattr(sources, "python_stdlib", seen)
    monkeypatch.setattr(sources, "post_release_python", new_code())


def texts(p, split):
    return {d.text for d in load_splits("github", p)[split]}


def test_approximate_holds_only_code_published_after_the_model(tiny, real_sources):
    folder = realllm.real_llm_dataset(tiny, 2_000)
    p = ul.get_profile("smoke", dataset=str(folder))
    forget, retain, approx = (texts(p, s) for s in ("forget", "retain", "approximate"))
    assert forget and retain and approx
    assert not forget & retain and not forget & approx and not retain & approx
    manifest = json.loads((folder / "manifest.json").read_text())
    by_split = {}
    for d in manifest["documents"]:
        by_split.setdefault(d["split"], set()).add(d["source"])
    assert all("first release 2025-03-04" in s for s in by_split["github/approximate"])
    assert not any("first release" in s for s in by_split["github/forget"])
    assert set(load_splits("general", p)) == {"evaluation", "retain"}


def test_code_older_than_the_model_is_refused(tiny, real_sources, monkeypatch):
    monkeypatch.setattr(sources, "post_release_python", new_code("2023-06-01"))
    with pytest.raises(ValueError, match="not known to be first published after"):
        realllm.real_llm_dataset(tiny, 2_000)


def test_pypi_dates_read_the_first_upload(monkeypatch):
    payload = {
        "releases": {
            "0.1": [{"upload_time_iso_8601": "2025-03-04T18:16:20Z"}],
            "0.2": [
                {"upload_time_iso_8601": "2025-04-01T10:00:00Z"},
                {"upload_time_iso_8601": "2025-03-30T10:00:00Z"},
            ],
            "0.3": [],
        }
    }
    monkeypatch.setattr(
        "urllib.request.urlopen", lambda url, timeout: io.BytesIO(json.dumps(payload).encode())
    )
    assert sources.pypi_dates("pkg", "0.2") == {
        "first_release": "2025-03-04",
        "version_release": "2025-03-30",
    }
    with pytest.raises(SourceUnavailable, match="no files for pkg==0.3"):
        sources.pypi_dates("pkg", "0.3")


def test_the_chapter_path_on_a_tiny_base_model(tiny, real_sources, docs, tmp_path, monkeypatch):
    tok = train_tokenizer([d.text for d in docs], 300)
    model = build_model(tiny, len(tok), seed=0)
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    monkeypatch.setattr("llmunlearn.models.smollm2", lambda: tmp_path / "base")
    p = realllm.real_llm_profile(tiny, chars=2_000, steps=2, lr=1e-3)
    assert p.base_model == str(tmp_path / "base") and p.eval_every == 2  # at the end
    runs = ul.unlearn_all(p, "github", ["ga", "npo"], progress=False)
    table = realllm.real_llm_table(p, runs, progress=False)
    assert list(table.index) == ["original", "ga", "npo"]
    assert table.loc["ga", "forget"] > table.loc["original", "forget"]  # GA ascends
    assert table["battery acc"].between(0, 1).all()
    with pytest.raises(ValueError, match="steps must be"):
        realllm.real_llm_profile(tiny, steps=0)
