"""Fine-tuning with random labels: train the forget chunks towards random next tokens.

Labels are drawn once, uniformly over the vocabulary, with a fixed seed; positions holding
a special token keep their id (as the official code). The loss is +CE towards them.
"""

import torch

from ...core import IGNORE_INDEX, model_chunk_nll
from . import register


def random_targets(forget, model, tokenizer, seed):
    """The forget chunks with a ``target`` column of random token ids (fixed by ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    vocab = model.get_input_embeddings().num_embeddings

    def add(batch):
        labels = torch.as_tensor(batch["labels"])
        target = torch.randint(0, vocab, labels.shape, generator=g)
        keep = (labels == IGNORE_INDEX) | torch.isin(labels, special)
        return {"target": torch.where(keep, labels, target).tolist()}

    return forget.map(add, batched=True, batch_size=len(forget) or 1)


@register("random_label", prepare=random_targets, paper=True)
def random_label(model, batches, ref=None, hp=None):
    """Fine-tuning with random labels: loss = CE(forget; random labels drawn once)."""
    b = batches["forget"]
    return model_chunk_nll(model, {**b, "labels": b["target"]}).mean()
