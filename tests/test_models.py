import pytest

import llmunlearn as ul
from llmunlearn.models import build_model, load_model, train_tokenizer


def test_pretrained_model_round_trips_through_hf_format(tiny):
    run = ul.pretrain(tiny, progress=False)
    model, tok = ul.load_original(run)
    assert model.config.vocab_size == len(tok)
    assert tok.pad_token == "<|pad|>"


def test_incomplete_checkpoint_is_an_error(tmp_path, tiny):
    build_model(tiny.model, 64, 0).save_pretrained(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="missing a tokenizer"):
        load_model(tmp_path / "m")


def test_tokenizer_and_model_vocabulary_mismatch_is_an_error(tmp_path, tiny, docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    build_model(tiny.model, 64, 0).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="does not belong to the model"):
        load_model(tmp_path / "m")
