"""lm-evaluation-harness: our battery as a local task, offline, checked against an
independent log-likelihood computation; task names checked before any model loads."""

import pytest
import torch

import llmunlearn as ul
from llmunlearn.cli import main
from llmunlearn.config import PROFILES
from llmunlearn.data.corpus import chunk_documents, load_splits
from llmunlearn.measurement.utility import utility_items
from llmunlearn.studies.utility import (
    BATTERY,
    SUITE,
    battery_task,
    expand_tasks,
    request_tokens,
    run_tasks,
    task_manager,
)
from llmunlearn.models import load_model


def test_task_names_expand_and_dedupe():
    assert expand_tasks("battery, suite,mmlu") == [BATTERY, *SUITE]
    assert expand_tasks(["piqa", "piqa"]) == ["piqa"]
    with pytest.raises(ValueError, match="no lm-eval task named"):
        expand_tasks(" , ")


def test_suite_exists_in_lm_eval_and_unknown_names_get_close_matches():
    assert task_manager(SUITE) is not None  # every suite task is in lm-eval's index
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\): 'mmlux' \(close: .*mmlu"):
        task_manager(["mmlux", "piqa"])


def test_battery_through_lm_eval_equals_a_hand_computed_log_likelihood(tiny, tmp_path):
    model, tok = load_model(ul.pretrain(tiny, progress=False).path / "model")
    general = chunk_documents(tok, load_splits("general", tiny)["evaluation"], tiny.chunk_len)
    items = utility_items(tiny, general)
    folder = battery_task(items, tok, tmp_path / "tasks")
    res = run_tasks(model.eval(), tok, "battery", include_path=folder, batch_size=4)
    samples = res["samples"][BATTERY]
    assert res["n_samples"][BATTERY] == len(samples) == len(items)
    correct = 0
    for s in samples:
        ctx, options, answer = items[s["doc_id"]]
        assert s["target"] == answer
        ours = []
        for option in options:
            whole, n_ctx = request_tokens(tok, tok.decode(ctx), tok.decode(option))
            ids = torch.tensor([whole])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            ours.append(sum(float(logp[t - 1, whole[t]]) for t in range(n_ctx, len(whole))))
        assert s["loglik"] == pytest.approx(ours, abs=1e-3)
        correct += max(range(4), key=ours.__getitem__) == answer
    assert res["results"][BATTERY]["acc"] == pytest.approx(correct / len(items))
    assert res["results"][BATTERY]["acc_stderr"] > 0


def test_lm_eval_run_uses_the_utility_items_of_evaluate(tiny, monkeypatch, capsys):
    zoo = ul.pretrain_zoo(tiny, progress=False)
    path = zoo["original"].path / "model"
    run = ul.lm_eval_run(tiny, path, "battery", batch_size=4)
    check = run.summary["battery_check"]
    assert check["lm_eval"] == run.summary["results"][BATTERY]["acc"]
    utility = ul.evaluate_folder(tiny, "books", path, zoo, intervals=False).summary["utility"]
    assert check["n"] == utility["n"] and check["ours"] == pytest.approx(utility["accuracy"])
    assert 0 <= check["same_choice"] <= 1 and 0 <= check["n_same_tokens"] <= check["n"]
    # where lm-eval scores exactly our tokens, it must pick what we pick
    assert check["n_same_tokens"] > 0 and check["same_choice_same_tokens"] == 1.0
    frame = ul.lm_eval_frame({"books": {"original": run}})
    assert frame.loc[0, "ours"] == check["ours"] and frame.loc[0, "task"] == BATTERY
    # the command line reuses the finished run and prints its JSON last
    monkeypatch.setitem(PROFILES, "smoke", tiny)
    assert main(["lm-eval", "--profile", "smoke", "--model", str(path), "--batch-size", "4"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(run.path / "summary.json") and out[0].startswith(BATTERY + ": acc ")


def test_unknown_task_is_an_error_before_the_model_loads(tiny, capsys):
    assert (
        main(
            [
                "lm-eval",
                "--profile",
                "smoke",
                "--model",
                "/nowhere/model",
                "--tasks",
                "battery,arc_chalenge",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "unknown lm-eval task(s): 'arc_chalenge' (close: arc_challenge" in err
