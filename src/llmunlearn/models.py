"""Tokenizers and models: train a byte-level BPE, build a small Llama, load any HF model."""

from __future__ import annotations

from pathlib import Path

from .config import Profile

PAD, EOS = "<|pad|>", "<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (give it pre-training data only), wrapped as a
    ``PreTrainedTokenizerFast`` with a pad token. Byte-level, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)


def build_model(profile: Profile, vocab_size: int, seed: int):
    """A small decoder-only Llama (the architecture of Yi-6B), randomly initialised."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=profile.d_model,
        intermediate_size=4 * profile.d_model, num_hidden_layers=profile.n_layer,
        num_attention_heads=profile.n_head, num_key_value_heads=profile.n_head,
        max_position_embeddings=profile.chunk_len, tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=None, eos_token_id=1,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def load_model(path: str | Path, *, dtype=None, trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer from a hub id or a local folder.

    A local folder must hold a complete checkpoint (config, weights, tokenizer); an
    incomplete one raises ``FileNotFoundError`` naming what is missing.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if p.exists():
        missing = [n for n in ("config.json", "tokenizer.json")
                   if not (p / n).exists()]
        if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
            missing.append("weights (*.safetensors)")
        if missing:
            raise FileNotFoundError(f"incomplete checkpoint {p}: missing {', '.join(missing)}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype or "auto", trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{model.get_input_embeddings().num_embeddings}: they do not belong together")
    return model, tokenizer


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
