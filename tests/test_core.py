"""The numeric core against independent computations."""

import math

import datasets
import pytest
import torch

from llmunlearn.core import IGNORE_INDEX, chunk_nll, model_chunk_nll, nll_loss, token_nll
from llmunlearn.measurement.metrics import perplexity
from llmunlearn.models import build_model


@pytest.fixture
def model(tiny):
    return build_model(tiny.model, vocab_size=50, seed=0).eval()


def padded_batch(lengths, T=16, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (len(lengths), T), generator=g)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, IGNORE_INDEX))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_full_chunks_match_the_models_own_loss(model):
    b = padded_batch([16, 16, 16])
    ours = nll_loss(model, b)
    theirs = model(**b).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_padded_chunks_match_the_model_loss_chunk_by_chunk(model):
    b = padded_batch([16, 9, 5])
    ours = model_chunk_nll(model, b)
    for i in range(3):
        one = {k: v[i : i + 1] for k, v in b.items()}
        torch.testing.assert_close(ours[i], model(**one).loss, rtol=1e-5, atol=1e-6)


def test_token_nll_against_a_hand_written_log_softmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 7, generator=g)
    labels = torch.tensor([[1, 2, 3, 4, 5, 6], [3, 3, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]])
    nll, mask = token_nll(logits, labels)
    for b in range(2):
        for t in range(5):
            y = labels[b, t + 1].item()
            if y == IGNORE_INDEX:
                assert not mask[b, t] and nll[b, t] == 0
            else:
                expected = -(logits[b, t, y] - torch.logsumexp(logits[b, t], 0))
                torch.testing.assert_close(nll[b, t], expected)
    torch.testing.assert_close(chunk_nll(logits, labels)[1], nll[1, :2].mean())


def test_evaluation_and_training_share_the_core(model):
    b = padded_batch([16, 11, 7, 16])
    ds = datasets.Dataset.from_dict({k: v.tolist() for k, v in b.items()})
    res = perplexity(model, ds, batch_size=3)
    per_chunk = model_chunk_nll(model, b)
    torch.testing.assert_close(
        torch.tensor(res["chunk_nll"]), per_chunk.detach(), rtol=1e-5, atol=1e-6
    )
    assert math.isclose(res["ppl"], math.exp(per_chunk.mean().item()), rel_tol=1e-5)
    # token-weighted perplexity weighs long chunks more
    n = b["attention_mask"].sum(1) - 1
    tok = (per_chunk * n).sum() / n.sum()
    assert math.isclose(res["ppl_token"], math.exp(tok.item()), rel_tol=1e-5)
    assert res["n_tokens"] == int(n.sum())


def test_perplexity_of_empty_set_is_an_error(model):
    with pytest.raises(ValueError, match="empty"):
        perplexity(model, datasets.Dataset.from_dict({"input_ids": []}))


def test_trimmed_evaluation_batches_keep_every_scored_token_and_the_chunk_order(model):
    """Evaluation cuts each batch to its longest chunk (padding only): the per-chunk
    token statistics are those of the whole padded batch, in the dataset's order."""
    from llmunlearn.core import batch_token_stats, length_sorted_batches

    b = padded_batch([9, 16, 5, 12, 7])
    ds = datasets.Dataset.from_dict({k: v.tolist() for k, v in b.items()})
    widths = [batch["input_ids"].shape[1] for _, batch in length_sorted_batches(ds, 2, "cpu")]
    assert widths == [16, 9, 5]  # longest first, each batch as wide as its longest chunk
    res = perplexity(model, ds, batch_size=2, token_stats=True)
    with torch.inference_mode():
        whole = batch_token_stats(model(**b).logits, b["labels"])
    for ours, theirs, n in zip(res["token_stats"], whole, [9, 16, 5, 12, 7]):
        assert len(ours["logp"]) == n - 1
        torch.testing.assert_close(
            torch.tensor(ours["logp"]), torch.tensor(theirs["logp"]), rtol=1e-4, atol=1e-5
        )


def test_length_grouped_batches_keep_each_window_and_sort_lengths_within_batches():
    """Pre-training batches grouped by length: the same chunks per window of batches,
    each batch of neighbouring lengths, an incomplete last batch left last; and a
    trimmed micro-batch loses padding only."""
    import random

    from llmunlearn.training.loop import length_grouped, trimmed_collate

    rng = random.Random(0)
    lengths = [rng.randint(5, 16) for _ in range(100)]
    order = [rng.randrange(100) for _ in range(4 * 25 + 3)]
    grouped = length_grouped(order, lengths, batch=4, seed=1, window=5)
    assert grouped[-3:] == order[-3:]
    for w in range(0, 100, 20):
        assert sorted(grouped[w : w + 20]) == sorted(order[w : w + 20])
    spread = [
        max(lengths[i] for i in grouped[b : b + 4]) - min(lengths[i] for i in grouped[b : b + 4])
        for b in range(0, 100, 4)
    ]
    random_spread = [
        max(lengths[i] for i in order[b : b + 4]) - min(lengths[i] for i in order[b : b + 4])
        for b in range(0, 100, 4)
    ]
    assert sum(spread) < sum(random_spread) / 2
    b = padded_batch([9, 5, 7])
    rows = [{k: v[i] for k, v in b.items()} for i in range(3)]
    cut = trimmed_collate(rows)
    assert cut["input_ids"].shape == (3, 9)
    torch.testing.assert_close(cut["labels"], b["labels"][:, :9])
    assert int(cut["attention_mask"].sum()) == int(b["attention_mask"].sum())
