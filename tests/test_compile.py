"""``compile=True`` (torch.compile for the training steps) trains the same model: the same
losses and weights within float noise, and the model handed to evaluation and saving is
the model itself, not the compiled wrapper."""

import datasets
import torch

from llmunlearn.core import nll_loss
from llmunlearn.models import build_model
from llmunlearn.training.loop import TrainConfig, train


def _chunks(tiny, n=16):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, tiny.vocab_size, (n, tiny.chunk_len), generator=g)
    lens = torch.randint(tiny.chunk_len // 2, tiny.chunk_len + 1, (n,), generator=g)
    mask = (torch.arange(tiny.chunk_len)[None] < lens[:, None]).long()
    return datasets.Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "labels": ids.masked_fill(mask == 0, -100).tolist(),
        }
    )


def test_a_compiled_run_trains_the_same_model(tiny, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    data, out, seen = _chunks(tiny), {}, {}
    for compiled in (False, True):
        model = build_model(tiny.model, tiny.vocab_size, seed=0)
        cfg = TrainConfig(steps=3, lr=1e-3, batch=4, micro_batch=4, compile=compiled)

        def on_eval(m, step, save, compiled=compiled):
            seen[compiled] = type(m)
            return {}

        res = train(
            model,
            lambda m, b: nll_loss(m, b["train"]),
            {"train": data},
            cfg,
            tmp_path / str(compiled),
            on_eval=on_eval,
            progress=False,
        )
        out[compiled] = (res["log"], res["model"].state_dict())
        assert type(res["model"]) is type(model)
    assert seen[True] is seen[False] is type(model)
    assert counters["frames"]["ok"] > 0  # dynamo did compile the steps of the second run
    (log0, w0), (log1, w1) = out[False], out[True]
    for a, b in zip(log0, log1):
        assert abs(a["loss"] - b["loss"]) < 1e-4 * max(1.0, abs(a["loss"]))
    assert all(torch.allclose(w0[k], w1[k], atol=1e-5) for k in w0)
    assert any(
        not torch.equal(w0[k], build_model(tiny.model, tiny.vocab_size, 0).state_dict()[k])
        for k in w0
    )
