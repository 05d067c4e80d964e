"""Benchmark: evaluation throughput (tokens/s) of ``metrics.perplexity`` (batched, under
``torch.inference_mode``) against a plain loop that scores one chunk at a time with the
model's own ``labels=`` loss, on one domain's splits; plus the wall time of evaluating
every split of the domain. Not a test. Usage: python bench/eval_throughput.py --profile cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def plain_loop(model, chunks):
    ds = chunks.with_format("torch", columns=["input_ids", "attention_mask", "labels"])
    total = 0.0
    with torch.no_grad():
        for row in ds:
            out = model(**{k: v[None] for k, v in row.items()})
            total += float(out.loss)
    return total / len(ds)


def main(argv=None):
    import llmunlearn as ul
    from llmunlearn.data import chunk_documents, load_splits
    from llmunlearn.metrics import perplexity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--domain", default="github")
    args = parser.parse_args(argv)
    profile = ul.get_profile(args.profile)
    torch.set_num_threads(profile.threads)
    model, tok = ul.load_original(ul.pretrain(profile))
    model.eval()
    splits = {s: chunk_documents(tok, d, profile.chunk_len)
              for s, d in load_splits(args.domain, profile).items()}
    tokens = sum(sum(map(sum, c.with_format(None)["attention_mask"])) for c in splits.values())
    t0 = time.perf_counter()
    for c in splits.values():
        perplexity(model, c)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in splits.values():
        plain_loop(model, c)
    plain = time.perf_counter() - t0
    json.dump({"profile": args.profile, "domain": args.domain, "tokens": tokens,
               "ours_s": ours, "plain_s": plain, "ours_tokens_per_s": tokens / ours,
               "plain_tokens_per_s": tokens / plain, "speed-up": plain / ours},
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
