"""Bad input at every entry point: one clear message naming the value and what is allowed,
raised before any work; on the command line, exit status 2 and no traceback."""

import errno
import json
import math
import re

import datasets
import pytest
import torch

import llmunlearn as ul
from llmunlearn import cli
from llmunlearn.report.book import build
from llmunlearn.config import get_profile
from llmunlearn.data.corpus import hub_documents
from llmunlearn.unlearning.methods import get_method, resolve_hparams
from llmunlearn.measurement.metrics import perplexity
from llmunlearn.measurement.mia import auc
from llmunlearn.models import build_model, load_model
from llmunlearn.runs import read_json, write_json


def _smoke(**kw):
    return lambda: get_profile("smoke", **kw)


def _hp(method, **kw):
    return lambda: resolve_hparams(get_method(method), kw)


def _unlearn(domain="books", method="ga", **kw):
    return lambda: ul.unlearn(get_profile("smoke"), domain, method, progress=False, **kw)


def _chunks(n):
    return datasets.Dataset.from_dict(
        {"input_ids": [[1, 2, 3]] * n, "attention_mask": [[1, 1, 1]] * n, "labels": [[1, 2, 3]] * n}
    )


LIBRARY = [  # (case, call, message the error must match)
    ("unknown profile", lambda: get_profile("laptop"), "unknown profile 'laptop'; valid"),
    ("unknown design", _smoke(design="paired"), "unknown design 'paired'; valid: matched"),
    ("unknown profile field", _smoke(batch=4), r"unknown profile field\(s\) \['batch'\]"),
    ("zero chunk length", _smoke(chunk_len=0), "chunk_len must be an integer >= 1, got 0"),
    ("negative batch", _smoke(unlearn_batch=-4), "unlearn_batch must be an integer >= 1"),
    ("zero eval_every", _smoke(eval_every=0), "eval_every must be an integer >= 1, got 0"),
    ("zero threads", _smoke(threads=0), "threads must be an integer >= 1, got 0"),
    ("fractional steps", _smoke(unlearn_steps=2.5), "unlearn_steps must be an integer"),
    (
        "NaN learning rate",
        _smoke(unlearn_lr=math.nan),
        "unlearn_lr must be a positive finite number, got nan",
    ),
    ("negative learning rate", _smoke(unlearn_lr=-1e-3), "unlearn_lr must be a positive"),
    ("width not divisible by heads", _smoke(d_model=65), r"d_model \(65\) must be a multiple"),
    (
        "unknown method",
        lambda: get_method("gradient_ascent"),
        "unknown method 'gradient_ascent'; valid: ga",
    ),
    (
        "unknown hyper-parameter",
        _hp("ga_gd_in", lamda=1.0),
        r"'ga_gd_in' has no hyper-parameter\(s\) \['lamda'\]; it has \['lambda'\]",
    ),
    ("negative lambda", _hp("ga_gd_in", **{"lambda": -1.0}), "lambda must be a finite number >= 0"),
    ("zero beta", _hp("npo", beta=0.0), "beta must be a finite number > 0, got 0.0"),
    ("negative alpha", _hp("rmu", alpha=-5.0), "alpha must be a finite number >= 0"),
    ("infinite steer", _hp("rmu", steer=math.inf), "steer must be a finite number >= 0, got inf"),
    ("fractional layer", _hp("rmu", layer=1.5), "layer must be an integer, got 1.5"),
    ("unknown domain", _unlearn(domain="wikipedia"), "unknown domain 'wikipedia'; valid"),
    ("zero learning rate", _unlearn(lr=0.0), "learning rate must be a positive finite"),
    ("zero steps", _unlearn(steps=0), "steps must be an integer >= 1, got 0"),
    ("negative seed", _unlearn(seed=-1), "seed must be an integer >= 0, got -1"),
    ("unknown optimiser", _unlearn(optimizer="lion"), "unknown optimizer 'lion'; valid: adamw"),
    ("no members", lambda: auc([], [0.1, 0.2]), "members and non-members; got 0 and 2"),
    (
        "a tolerance outside (0, 1)",
        lambda: (
            __import__("importlib")
            .import_module("llmunlearn.studies.decisions")
            .check_fraction("tolerance", 1.2)
        ),
        r"tolerance must lie in \(0, 1\), got 1.2",
    ),
    (
        "a forget band below 1",
        lambda: (
            __import__("importlib")
            .import_module("llmunlearn.studies.robustness")
            .check_band("forget band", 0.8)
        ),
        "forget band must be a finite factor >= 1, got 0.8",
    ),
    (
        "evaluated steps that do not increase",
        lambda: get_profile("smoke", grid_eval_steps=(4, 2)),
        r"grid_eval_steps must be strictly increasing, got \(4, 2\)",
    ),
    (
        "a repeat count out of range",
        lambda: get_profile("smoke", forget_repeats=40),
        "forget_repeats must be an integer in 1..16, got 40",
    ),
    (
        "retrained designs without the matched one",
        lambda: get_profile("smoke", retrained_designs=("shifted",)),
        r"retrained_designs must be a tuple of distinct designs of .* holding 'matched', "
        r"got \('shifted',\)",
    ),
    ("empty evaluation set", lambda: perplexity(None, _chunks(0)), "empty set of chunks"),
    ("unknown executor", _smoke(executor="slurm"), "unknown executor 'slurm'; valid: local, ray"),
    ("negative GPUs per run", _smoke(ray_gpus_per_run=-1), r"ray_gpus_per_run must be a number"),
    (
        "a table name with a path in it",
        lambda: ul.offer_csv(__import__("pandas").DataFrame({"a": [1]}), "../grid"),
        "a table's file name must be lower-case",
    ),
    (
        "a grid on an unknown domain",
        lambda: ul.run_grid(get_profile("smoke"), "poetry"),
        "unknown domain 'poetry'",
    ),
    (
        "hyper-parameters of an unknown method",
        lambda: ul.unlearn_all(get_profile("smoke"), "books", hparams={"nop": {"beta": 1.0}}),
        "unknown method 'nop'",
    ),
    (
        "a bad hyper-parameter among the methods'",
        lambda: ul.unlearn_all(get_profile("smoke"), "books", hparams={"npo": {"beta": -1.0}}),
        "npo hyper-parameter beta must be a finite number > 0",
    ),
    (
        "unknown split",
        lambda: hub_documents("arxiv", "validation", "some/dataset"),
        "unknown split of arxiv 'validation'; valid: forget",
    ),
    (
        "unknown chapter",
        lambda: build("smoke", only="conclusions"),
        "unknown chapter 'conclusions'; valid: quickstart",
    ),
]


def _tree(folder):
    """Every path under ``folder`` with its size (empty when it does not exist)."""
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


@pytest.mark.parametrize("case,call,message", LIBRARY, ids=[c[0] for c in LIBRARY])
def test_library_rejects_bad_input_by_name(case, call, message, isolated_home, tmp_path):
    before, here = _tree(isolated_home), _tree(tmp_path)
    with pytest.raises(ValueError, match=message):
        call()
    # nothing was trained or written before the check: the home folder is as it was
    assert _tree(isolated_home) == before
    assert _tree(tmp_path) == here


def _saved_model(tmp_path, tiny, vocab=512):
    """A complete tiny checkpoint folder (safetensors, config, tokenizer)."""
    from llmunlearn.models import train_tokenizer

    folder = tmp_path / "model"
    tok = train_tokenizer(["some text to train a tokenizer on"] * 20, vocab)
    build_model(tiny.model, len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, tok


def test_checkpoint_problems_are_named(tiny, tmp_path):
    folder, tok = _saved_model(tmp_path, tiny)
    load_model(folder)  # the complete folder loads
    (folder / "model.safetensors").rename(tmp_path / "weights")
    with pytest.raises(
        FileNotFoundError, match=r"incomplete checkpoint .*weights \(\*\.safetensors\)"
    ):
        load_model(folder)
    (tmp_path / "weights").write_bytes(b"not safetensors")
    (tmp_path / "weights").rename(folder / "model.safetensors")
    with pytest.raises(Exception, match="(?i)safetensor|header|deserializ"):
        load_model(folder)


def test_a_tokenizer_that_does_not_belong_to_the_model_is_named(tiny, tmp_path):
    folder, _ = _saved_model(tmp_path, tiny)
    build_model(tiny.model, 30, seed=0).save_pretrained(folder)  # a 30-token embedding
    with pytest.raises(
        ValueError, match="tokenizer has .* tokens but the model's embedding has 30"
    ):
        load_model(folder)


def test_a_chunk_longer_than_the_context_is_named(tiny, tmp_path):
    folder, _ = _saved_model(tmp_path, tiny)  # context = tiny.chunk_len = 32
    with pytest.raises(ValueError, match="chunk length 64 exceeds the model's context of 32"):
        ul.evaluate_folder(get_profile("smoke", chunk_len=64), "books", folder, zoo={})


def test_a_corrupt_cache_file_names_itself(tmp_path):
    path = tmp_path / "run" / "summary.json"
    path.parent.mkdir()
    path.write_text('{"status": "fini')
    with pytest.raises(ValueError, match=re.escape(f"corrupt JSON file {path}")):
        read_json(path)


def test_a_full_disk_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json(path, {"step": 1})

    def full(obj, f, **kw):
        f.write('{"step": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(OSError, match="No space left"):
        write_json(path, {"step": 2})
    assert read_json(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


CLI = [  # (arguments, message on stderr); exit status 2, no traceback
    (["unlearn", "--profile", "smoke", "--method", "nope"], "unknown method 'nope'"),
    (["unlearn", "--profile", "smoke", "--domain", "poetry"], "unknown domain 'poetry'"),
    (["unlearn", "--profile", "smoke", "--lr", "-1"], "learning rate must be a positive"),
    (["unlearn", "--profile", "smoke", "--lr", "nan"], "learning rate must be a positive"),
    (["unlearn", "--profile", "smoke", "--steps", "0"], "steps must be an integer >= 1"),
    (["unlearn", "--profile", "smoke", "--seed", "-3"], "seed must be an integer >= 0"),
    (["unlearn", "--profile", "laptop"], "invalid choice: 'laptop'"),
    (["unlearn", "--profile", "smoke", "--optimizer", "lion"], "invalid choice: 'lion'"),
    (["unlearn", "--profile", "smoke", "--design", "paired"], "invalid choice: 'paired'"),
    (
        ["evaluate", "--profile", "smoke", "--domain", "poetry", "--model", "x"],
        "unknown domain 'poetry'",
    ),
    (["bench", "--profile", "smoke", "--steps", "0"], "'0' is not a positive integer"),
    (["book", "--profile", "smoke", "--only", "conclusions"], "unknown chapter 'conclusions'"),
    (["lm-eval", "--model", "x", "--batch-size", "-2"], "'-2' is not a positive integer"),
    (
        ["unlearn", "--profile", "smoke", "--method", "npo", "--hparam", "beta=0"],
        "npo hyper-parameter beta must be a finite number > 0, got 0",
    ),
    (
        ["unlearn", "--profile", "smoke", "--method", "npo", "--hparam", "gamma=1"],
        "method 'npo' has no hyper-parameter(s) ['gamma']; it has ['beta']",
    ),
    (["unlearn", "--profile", "smoke", "--hparam", "beta"], "'beta' is not NAME=VALUE"),
    (["grid", "--profile", "smoke", "--executor", "slurm"], "unknown executor 'slurm'"),
    (
        ["grid", "--profile", "smoke", "--executor", "ray", "--address", "127.0.0.1:1"],
        "no Ray cluster answers at '127.0.0.1:1'",
    ),
    (
        ["grid", "--profile", "smoke", "--executor", "ray", "--address", "head-node"],
        "Ray address 'head-node' is not host:port",
    ),
    (["relearn", "--profile", "smoke", "--domain", "poetry"], "unknown domain 'poetry'"),
    (
        ["unlearn", "--profile", "smoke", "--method", "npo", "--hparam", "beta=x"],
        "'x' is not a number",
    ),
]


def _main(args, capsys):
    try:
        code = cli.main(args)
    except SystemExit as e:  # argparse rejects a value before main's body runs
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args,message", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_cli_rejects_bad_input_in_one_line(args, message, capsys, isolated_home):
    before = _tree(isolated_home)
    code, err = _main(args, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert _tree(isolated_home) == before  # a refused command writes nothing


def test_cli_names_a_pickled_checkpoint_and_an_unwritable_home(tiny, tmp_path, capsys, monkeypatch):
    folder, _ = _saved_model(tmp_path, tiny)
    (folder / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(1)}, folder / "pytorch_model.bin")
    code, err = _main(
        ["evaluate", "--profile", "smoke", "--domain", "books", "--model", str(folder)], capsys
    )
    assert code == 2 and "refusing to unpickle" in err and "Traceback" not in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LLMUNLEARN_HOME", str(blocker / "home"))
    code, err = _main(["pretrain", "--profile", "smoke"], capsys)
    assert code == 2 and str(blocker) in err and "Traceback" not in err


def test_evaluate_refuses_a_folder_that_is_no_checkpoint_before_writing_anything(tiny):
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint /etc"):
        ul.evaluate_folder(tiny, "books", "/etc", zoo={})
    assert not (ul.home() / "evaluate").exists()


def test_new_weights_in_the_same_folder_are_evaluated_again(tiny, tmp_path):
    """The evaluation cache is keyed by the weights, not the folder's path (issue 37)."""
    folder, tok = _saved_model(tmp_path, tiny)
    first = ul.evaluate_folder(tiny, "books", folder, zoo={}, intervals=False)
    again = ul.evaluate_folder(tiny, "books", folder, zoo={}, intervals=False)
    assert again.path == first.path  # the same weights: the cached run
    build_model(tiny.model, len(tok), seed=1).save_pretrained(folder)  # new weights, same folder
    second = ul.evaluate_folder(tiny, "books", folder, zoo={}, intervals=False)
    assert second.path != first.path
    ppl = [r.summary["perplexity"]["forget"]["ppl"] for r in (first, second)]
    assert ppl[0] != ppl[1]
