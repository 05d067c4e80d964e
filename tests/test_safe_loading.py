"""Nothing a user could hand over is unpickled: weights load from safetensors only, and a
resumed training checkpoint reads tensors only (``torch.load(weights_only=True)``)."""

import pickle

import pytest

from llmunlearn.core import nll_loss
from llmunlearn.models import build_model, load_model, train_tokenizer
from llmunlearn.training.loop import TrainConfig, train


class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_weights_file_is_refused_unopened(tiny, tmp_path):
    folder, marker = tmp_path / "model", tmp_path / "pwned"
    tok = train_tokenizer(["a few words for a tokenizer"] * 10, 300)
    build_model(tiny.model, len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match=r"pickles \(pytorch_model.bin\): refusing to unpickle"):
        load_model(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "planted", ["optimizer.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl"]
)
def test_a_training_checkpoint_never_unpickles_code(tiny, docs, tmp_path, planted):
    from llmunlearn.data.corpus import chunk_documents

    tok = train_tokenizer([d.text for d in docs], 300)
    ds = chunk_documents(tok, docs, tiny.chunk_len)
    cfg = TrainConfig(steps=4, lr=1e-2, batch=2, micro_batch=2, checkpoint_every=2)
    loss = lambda m, b: nll_loss(m, b["train"])  # noqa: E731

    def crash(model, step, save):
        if step == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(
            build_model(tiny.model, len(tok), 0),
            loss,
            {"train": ds},
            cfg,
            tmp_path / "run",
            on_eval=crash,
            eval_every=3,
            progress=False,
        )
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoint" / planted).write_bytes(pickle.dumps(Payload(marker)))
    try:  # refusing to resume is fine; running the file's code is not
        train(
            build_model(tiny.model, len(tok), 0),
            loss,
            {"train": ds},
            cfg,
            tmp_path / "run",
            progress=False,
        )
    except Exception:
        pass
    assert not marker.exists()
