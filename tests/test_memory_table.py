"""The README's memory table for Yi-6B under FSDP, checked against the model built on the
meta device (no weights, no memory): N and every row that follows from it, and the sum."""

import re
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

README = Path(__file__).resolve().parents[1] / "README.md"
YI_6B = dict(  # 01-ai/Yi-6B's config.json
    vocab_size=64_000,
    hidden_size=4096,
    intermediate_size=11_008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=4,
    tie_word_embeddings=False,
)
GPUS = 8


def _section() -> str:
    return README.read_text().split("### Memory on several GPUs")[1].split("\n## ")[0]


def _rows() -> list[list[str]]:
    lines = [x for x in _section().splitlines() if x.startswith("| ") and "---" not in x]
    return [[c.strip() for c in x.strip("|").split("|")] for x in lines[1:]]  # no header


def _gb(cell: str) -> float | None:
    m = re.search(r"([\d.]+) GB", cell)
    return float(m.group(1)) if m else None


def test_the_readme_memory_table_follows_from_yi_6b_built_on_the_meta_device():
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**YI_6B))
    n = sum(p.numel() for p in model.parameters())
    assert f"N = {n / 1e9:.2f}e9 parameters" in _section()
    rows, per_gpu, frozen = _rows(), [], 0.0
    for what, total, per in rows[:-1]:
        bytes_per = re.search(r"(?:(\d+) x )?(\d+) N bytes", what)
        if bytes_per:  # a row that is a multiple of N
            factor = int(bytes_per.group(1) or 1) * int(bytes_per.group(2))
            assert _gb(total) == round(factor * n / 1e9, 1), what
            whole = "whole on every GPU" in what
            assert _gb(per) == round(factor * n / 1e9 / (1 if whole else GPUS), 1), what
            frozen += _gb(per) if "frozen" in what else 0.0
        if "logits" in what:  # one chunk's logits and their gradient in fp32
            assert _gb(per) == round(2 * 4096 * YI_6B["vocab_size"] * 4 / 1e9, 1)
        per_gpu.append(_gb(per))
    in_all = re.findall(r"about (\d+) GB of 80.*?(\d+) GB for the methods", rows[-1][2])[0]
    assert abs(int(in_all[0]) - sum(per_gpu)) <= 1
    assert abs(int(in_all[1]) - (sum(per_gpu) - frozen)) <= 1
