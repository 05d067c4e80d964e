"""Unlearning with adversarial samples: train the forget chunks towards the original
model's most likely *wrong* next token.

Paper: a_i = argmax_{a != y_i} P(a | y_<i), labels made once by the original model. The
released code is one position off from this definition; we follow the paper: the target
at position i is the best token other than y_i under the prediction made from y_<i.
"""

import torch

from ...core import IGNORE_INDEX, model_chunk_nll
from . import register


@torch.inference_mode()
def adversarial_targets(forget, model, tokenizer, seed, batch_size: int = 16):
    """The forget chunks with a ``target`` column: at each scored position, the original
    model's most likely token that is not the true one."""
    device = next(model.parameters()).device

    def add(batch):
        ids = torch.as_tensor(batch["input_ids"], device=device)
        labels = torch.as_tensor(batch["labels"], device=device)
        logits = model(
            input_ids=ids, attention_mask=torch.as_tensor(batch["attention_mask"], device=device)
        ).logits.float()
        # the prediction for token i comes from position i-1
        pred = (
            logits[:, :-1]
            .scatter(-1, labels[:, 1:].clamp_min(0).unsqueeze(-1), float("-inf"))
            .argmax(-1)
        )
        target = labels.clone()
        target[:, 1:] = torch.where(labels[:, 1:] == IGNORE_INDEX, labels[:, 1:], pred)
        return {"target": target.cpu().tolist()}

    was_training = model.training
    model.eval()
    out = forget.map(add, batched=True, batch_size=batch_size)
    model.train(was_training)
    return out


@register("adversarial", prepare=adversarial_targets, paper=True, labels_from_model=True)
def adversarial(model, batches, ref=None, hp=None):
    """Unlearning with adversarial samples: loss = CE(forget; best wrong token)."""
    b = batches["forget"]
    return model_chunk_nll(model, {**b, "labels": b["target"]}).mean()
