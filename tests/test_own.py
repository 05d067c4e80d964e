"""Your model, your text (issue 36): `llmunlearn unlearn --model ... --forget ...` and
`llmunlearn evaluate --model ... --forget ...` on folders, JSONL and datasets folders, and
every bad input refused before anything is written."""

import json
from pathlib import Path

import pytest
import torch

import llmunlearn as ul
from llmunlearn.cli import main
from llmunlearn.data.own import read_documents


def write_folder(path, texts):
    path.mkdir(parents=True)
    for i, t in enumerate(texts):
        (path / f"doc{i:02d}.txt").write_text(t)
    return path


def texts(seed, n=6):
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()
    return [
        " ".join(words[(seed * 7 + i * 3 + j * j) % len(words)] for j in range(80 + 5 * i))
        + f" document {seed}-{i}."
        for i in range(n)
    ]


@pytest.fixture
def own(tmp_path, tiny):
    """A tiny pre-trained checkpoint and three disjoint folders of text files."""
    model = ul.pretrain(tiny, progress=False).path / "model"
    sets = {
        name: write_folder(tmp_path / "text" / name, texts(seed))
        for seed, name in enumerate(("forget", "retain", "approximate", "general"), 1)
    }
    return model, sets


def files_under(path):
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_unlearn_on_your_model_and_folders(own, tiny, capsys):
    model, sets = own
    paths = [x for k in ("forget", "retain", "approximate", "general") for x in (f"--{k}", sets[k])]
    args = ["unlearn", "--profile", "smoke", "--model", model, *paths, "--method", "ga_gd_in"]
    args = [str(a) for a in args] + "--lr 1e-3 --steps 3 --batch 2 --chunk-len 32".split()
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run = ul.Run(Path(out[-1]))  # the last line is the run folder
    summary = run.summary
    assert summary["status"] == "finished"
    first, last = summary["evals"][0], summary["evals"][-1]
    assert last["step"] == 3 and last["ppl_forget"] > first["ppl_forget"]  # it ascended
    # the forget perplexity is the user's forget documents', chunked with the model's
    # tokenizer: the run's data folder holds exactly them
    data = json.loads(
        (Path(run.config["profile"]["data"]["dataset"]) / "manifest.json").read_text()
    )
    forget_ids = sorted(r["id"] for r in data["documents"] if r["split"] == "github/forget")
    assert forget_ids == sorted(p.name for p in sets["forget"].iterdir())


def test_evaluate_your_model_on_a_jsonl_file(own, tmp_path, capsys):
    model, sets = own
    jsonl = tmp_path / "forget.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"text": t, "id": f"f{i}"}) for i, t in enumerate(texts(1)))
    )
    args = ["evaluate", "--profile", "smoke", "--model", str(model), "--forget", str(jsonl),
            "--approximate", str(sets["approximate"]), "--general", str(sets["general"]),
            "--chunk-len", "32"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads((Path(out[-1]) / "summary.json").read_text())
    assert summary["ppl_forget"] > 1 and summary["ppl_approximate"] > 1
    assert 0 <= summary["mia"]["loss"]["auc"] <= 1
    assert (
        summary["mia"]["loss"]["ci_low"]
        <= summary["mia"]["loss"]["auc"]
        <= summary["mia"]["loss"]["ci_high"]
    )


def test_without_a_general_set_the_books_general_text_stands_in(own, tiny):
    from llmunlearn.studies.own import evaluate_own

    model, sets = own
    run = evaluate_own(tiny, model, sets["forget"], sets["approximate"])
    assert run.summary["ppl_general"] > 1 and run.config["chunk_len"] == tiny.chunk_len


def test_a_saved_datasets_folder_reads_as_documents(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["one text", " ", "two text"]}).save_to_disk(
        tmp_path / "ds"
    )
    assert [d.text for d in read_documents(tmp_path / "ds")] == ["one text", "two text"]


def bad_inputs(tmp_path, model, sets):
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = write_folder(tmp_path / "binary", ["fine text"])
    (binary / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    overlap = write_folder(tmp_path / "overlap", texts(3)[:2] + texts(1)[:1])
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in model.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    torch.save({}, pickled / "pytorch_model.bin")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((model / "config.json").read_text())
    return {
        "empty folder": ({"forget": empty}, "empty"),
        "not text": ({"forget": binary}, "not UTF-8 text"),
        "jsonl without text": ({"forget": no_text}, "line 2 has no string field 'text'"),
        "same document": ({"approximate": overlap}, "also in approximate"),
        "pickled weights": ({"model": pickled}, "pickles"),
        "no weights": ({"model": no_weights}, "missing"),
        "context": ({"chunk-len": 4096}, "exceeds the model's context"),
        "missing path": ({"retain": tmp_path / "nowhere"}, "does not exist"),
    }


def test_bad_input_is_refused_before_anything_is_written(own, tmp_path, isolated_home, capsys):
    model, sets = own
    before = files_under(isolated_home)
    for name, (change, message) in bad_inputs(tmp_path, model, sets).items():
        given = {"model": model, **sets, "chunk-len": 32, **change}
        args = ["unlearn", "--profile", "smoke", "--method", "ga", "--steps", "2"]
        args += [x for k, v in given.items() for x in (f"--{k}", str(v))]
        assert main(args) == 2, name
        err = capsys.readouterr().err
        assert message in err, (name, err)
        assert files_under(isolated_home) == before, f"{name}: something was written"


def test_a_tokenizer_that_is_not_the_models_is_refused(own, tmp_path, capsys):
    model, sets = own
    other = tmp_path / "other"
    other.mkdir()
    for f in model.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["vocab_size"] = 64  # a model of 64 tokens with a tokenizer of 512
    (other / "config.json").write_text(json.dumps(cfg))
    args = ["evaluate", "--profile", "smoke", "--model", other, "--forget", sets["forget"]]
    args = [str(a) for a in args] + ["--approximate", str(sets["approximate"]), "--chunk-len", "32"]
    assert main(args) == 2
    assert "does not belong to the model" in capsys.readouterr().err


def test_own_options_without_a_model_are_an_error(own, capsys):
    _, sets = own
    assert main(["unlearn", "--profile", "smoke", "--forget", str(sets["forget"])]) == 2
    assert "--forget need --model" in capsys.readouterr().err


def test_a_bf16_checkpoint_trains_in_fp32_master_weights_on_the_runtime_device(own, tiny, tmp_path):
    """The precision policy (models.runtime): a checkpoint stored in bf16 loads as fp32
    master weights on the runtime device, trains there (every forward pass of a causal LM
    gets its batch on that device, its weights in fp32), and its weights change."""
    from safetensors.torch import load_file
    from transformers import PreTrainedModel

    from llmunlearn.models import load_model, runtime

    model, sets = own
    m, tok = load_model(model)
    bf16 = tmp_path / "bf16"
    m.to(torch.bfloat16).save_pretrained(bf16)
    tok.save_pretrained(bf16)
    stored = load_file(next(bf16.glob("*.safetensors")))
    assert {t.dtype for t in stored.values()} == {torch.bfloat16}
    device, _ = runtime()
    seen = []

    def check(module, args, kwargs):
        if isinstance(module, PreTrainedModel):
            ids = kwargs.get("input_ids", args[0] if args else None)
            seen.append(
                (
                    ids.device,
                    {p.dtype for p in module.parameters()},
                    next(module.parameters()).device,
                )
            )

    original_call = PreTrainedModel.__call__

    def spy(self, *args, **kwargs):
        check(self, args, kwargs)
        return original_call(self, *args, **kwargs)

    PreTrainedModel.__call__ = spy
    try:
        from llmunlearn.studies.own import unlearn_own

        run = unlearn_own(
            tiny, bf16, sets["forget"], sets["retain"], sets["approximate"], sets["general"],
            method="ga", lr=1e-6, steps=2, progress=False,  # below bf16's resolution
        )  # fmt: skip
    finally:
        PreTrainedModel.__call__ = original_call
    assert run.summary["status"] == "finished" and seen
    assert all(
        d.type == device.type and w == {torch.float32} and p.type == device.type for d, w, p in seen
    )
    trained = load_file(next((run.path / "model").glob("*.safetensors")))
    assert {t.dtype for t in trained.values()} == {torch.float32}
    moved = [k for k in trained if not torch.equal(trained[k], stored[k].float())]
    assert moved, "no weight changed"


def test_the_real_llm_chapters_own_section_runs_your_model_on_your_folders(own, tiny):
    """``own_study``: the chapter's last section on your model and folders, every method
    checked before anything is written."""
    model, sets = own
    args = (tiny, model, sets["forget"], sets["approximate"], sets["retain"], sets["general"])
    with pytest.raises(ValueError, match="nope"):
        ul.own_study(*args, methods=["ga", "nope"], chunk_len=32)
    assert not (ul.home() / "evaluate").exists() and not (ul.home() / "unlearn").exists()
    out = ul.own_study(*args, methods=["ga", "npo"], lr=1e-3, steps=2, batch=2, chunk_len=32)
    table = out["table"]
    assert list(table.index) == ["your model", "ga", "npo"]
    assert table.loc["ga", "forget"] > table.loc["your model", "forget"]  # it ascended
    assert table.loc["your model", "step"] == 0 and table.loc["ga", "step"] in (1, 2)
    attacks = out["attacks"]
    assert {"loss", "min_k@0.3"} <= set(attacks.index)
    assert ((attacks["low"] <= attacks["AUC"]) & (attacks["AUC"] <= attacks["high"])).all()
    assert out["evaluation"].summary["ppl_forget"] == pytest.approx(
        table.loc["your model", "forget"], rel=0.2
    )  # the evaluation reads every chunk, the run's step 0 its evaluation sample


def test_the_frozen_original_is_held_in_the_compute_dtype_without_gradients(own, monkeypatch):
    """The original model the regularised methods read: fp32 where the runtime computes in
    fp32 (the CPU), bf16 where it computes in bf16 (a GPU's autocast), never trainable."""
    import types

    from llmunlearn.training import pretraining

    model, _ = own
    run = types.SimpleNamespace(path=Path(model).parent)
    assert Path(model).name == "model"
    for precision, dtype in (("no", torch.float32), ("bf16", torch.bfloat16)):
        device = pretraining.runtime()[0]
        monkeypatch.setattr(pretraining, "runtime", lambda: (device, precision))
        ref = pretraining.load_reference(run)
        assert {p.dtype for p in ref.parameters()} == {dtype}
        assert not ref.training and not any(p.requires_grad for p in ref.parameters())
