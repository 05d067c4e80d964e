"""Each method's loss on a fixed tiny batch against a hand-written computation, and the
properties the paper and the survey state."""

import datasets
import pytest
import torch

import llmunlearn as ul
from llmunlearn.config import IGNORE_INDEX
from llmunlearn.unlearning.methods import METHODS, resolve_hparams
from llmunlearn.models import build_model

V = 40


@pytest.fixture
def models(tiny):
    torch.manual_seed(0)
    model = build_model(tiny.model, V, seed=0)
    ref = build_model(tiny.model, V, seed=1).eval()
    return model, ref


def batch(seed, lengths=(12, 7)):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(2, V, (len(lengths), T), generator=g)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = ids * mask
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, IGNORE_INDEX))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def reference_chunk_nll(model, b, labels=None):
    """Plain loops: mean over scored positions of -log softmax(logits)[next label]."""
    labels = b["labels"] if labels is None else labels
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    out = []
    for i in range(len(labels)):
        terms = [
            -torch.log_softmax(logits[i, t], -1)[labels[i, t + 1]]
            for t in range(labels.size(1) - 1)
            if labels[i, t + 1] != IGNORE_INDEX
        ]
        out.append(torch.stack(terms).mean())
    return torch.stack(out)


def reference_kl(model, ref, b):
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    ref_logits = ref(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    terms = []
    for i in range(len(b["labels"])):
        for t in range(b["labels"].size(1) - 1):
            if b["labels"][i, t + 1] != IGNORE_INDEX:
                p = torch.softmax(ref_logits[i, t], -1)
                terms.append((p * (p.log() - torch.log_softmax(logits[i, t], -1))).sum())
    return torch.stack(terms).mean()


def loss_of(name, model, ref, batches, **hp):
    m = METHODS[name]
    return m.loss(model, batches, ref, resolve_hparams(m, hp))


def test_the_paper_has_seven_methods_and_the_survey_four_more():
    assert [m for m in METHODS if METHODS[m].paper] == [
        "ga",
        "random_label",
        "adversarial",
        "ga_gd_in",
        "ga_gd_general",
        "ga_kl_in",
        "ga_kl_general",
    ]
    assert {"npo", "npo_gd", "rmu", "task_vector"} <= set(METHODS)


@pytest.mark.parametrize("name", ["ga_gd_in", "ga_gd_general"])
def test_ga_gd_against_reference(models, name):
    model, ref = models
    f, r = batch(1), batch(2)
    expected = -reference_chunk_nll(model, f).mean() + 0.5 * reference_chunk_nll(model, r).mean()
    torch.testing.assert_close(
        loss_of(name, model, ref, {"forget": f, "retain": r}, **{"lambda": 0.5}), expected
    )


@pytest.mark.parametrize("name", ["ga_kl_in", "ga_kl_general"])
def test_ga_kl_against_reference(models, name):
    model, ref = models
    f, r = batch(1), batch(2)
    expected = -reference_chunk_nll(model, f).mean() + reference_kl(model, ref, r)
    torch.testing.assert_close(
        loss_of(name, model, ref, {"forget": f, "retain": r}), expected, rtol=1e-5, atol=1e-5
    )


def test_kl_of_a_model_to_itself_is_zero(models):
    model, _ = models
    loss = loss_of("ga_kl_in", model, model, {"forget": batch(1), "retain": batch(2)})
    torch.testing.assert_close(loss, -reference_chunk_nll(model, batch(1)).mean())


def forget_dataset(seed=3):
    b = batch(seed, lengths=(12, 9, 12))
    return datasets.Dataset.from_dict({k: v.tolist() for k, v in b.items()})


class Tok:
    all_special_ids = [0, 1]


def test_random_labels_are_fixed_by_the_seed_and_keep_padding(models):
    model, _ = models
    a = METHODS["random_label"].prepare(forget_dataset(), model, Tok(), seed=7)
    b = METHODS["random_label"].prepare(forget_dataset(), model, Tok(), seed=7)
    c = METHODS["random_label"].prepare(forget_dataset(), model, Tok(), seed=8)
    assert a["target"] == b["target"] != c["target"]
    for row in a:
        for y, t in zip(row["labels"], row["target"]):
            assert (t == IGNORE_INDEX) == (y == IGNORE_INDEX)
    t = torch.tensor(a["target"])
    scored = t != IGNORE_INDEX
    assert (t[scored] != torch.tensor(a["labels"])[scored]).float().mean() > 0.8


def test_adversarial_labels_never_equal_the_true_token_and_follow_the_paper(models):
    _, ref = models
    out = METHODS["adversarial"].prepare(forget_dataset(), ref, Tok(), seed=0)
    labels, target = torch.tensor(out["labels"]), torch.tensor(out["target"])
    scored = labels[:, 1:] != IGNORE_INDEX
    assert (target[:, 1:][scored] != labels[:, 1:][scored]).all()
    # a_i = argmax_{a != y_i} P(a | y_<i): the prediction made at position i - 1
    logits = ref(
        input_ids=torch.tensor(out["input_ids"]), attention_mask=torch.tensor(out["attention_mask"])
    ).logits
    i = 4
    probs = logits[0, i - 1].clone()
    probs[labels[0, i]] = float("-inf")
    assert target[0, i] == probs.argmax()


def test_random_and_adversarial_losses_are_ce_towards_their_targets(models):
    model, ref = models
    for name in ("random_label", "adversarial"):
        ds = METHODS[name].prepare(forget_dataset(), ref, Tok(), seed=0)
        b = {k: torch.tensor(ds[k]) for k in ("input_ids", "attention_mask", "labels", "target")}
        expected = reference_chunk_nll(model, b, labels=b["target"]).mean()
        torch.testing.assert_close(loss_of(name, model, ref, {"forget": b}), expected)


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_npo_at_the_reference_is_a_scaled_ga_gradient(tiny):
    model = build_model(tiny.model, V, seed=0)
    ref = build_model(tiny.model, V, seed=0).eval()
    f = batch(1, lengths=(12, 12))  # equal lengths: summed and averaged GA agree up to scale
    g_npo = grads(model, loss_of("npo", model, ref, {"forget": f}, beta=0.1))
    g_ga = grads(model, loss_of("ga", model, ref, {"forget": f}))
    scale = (g_npo @ g_ga) / (g_ga @ g_ga)
    torch.testing.assert_close(g_npo, scale * g_ga, rtol=1e-4, atol=1e-6)
    assert scale > 0


def test_npo_against_reference(models):
    model, ref = models
    f = batch(1)
    n = (f["labels"][:, 1:] != IGNORE_INDEX).sum(1)
    logp = -reference_chunk_nll(model, f) * n
    ref_logp = -reference_chunk_nll(ref, f) * n
    expected = (2 / 0.5 * torch.log1p(torch.exp(0.5 * (logp - ref_logp)))).mean()
    torch.testing.assert_close(
        loss_of("npo", model, ref, {"forget": f}, beta=0.5), expected, rtol=1e-5, atol=1e-5
    )


def test_rmu_against_reference(models):
    model, ref = models
    f, r = batch(1), batch(2)
    hf = model(
        **{k: f[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True
    ).hidden_states[-1]
    hr = model(
        **{k: r[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True
    ).hidden_states[-1]
    hr0 = ref(
        **{k: r[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True
    ).hidden_states[-1]
    u = torch.rand(hf.size(-1), generator=torch.Generator().manual_seed(0))
    u = u / u.norm()
    mf, mr = f["attention_mask"].bool(), r["attention_mask"].bool()
    expected = ((hf - 5.0 * u) ** 2).mean(-1)[mf].mean() + 2.0 * ((hr - hr0) ** 2).mean(-1)[
        mr
    ].mean()
    got = loss_of("rmu", model, ref, {"forget": f, "retain": r}, steer=5.0, alpha=2.0, layer=-1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_task_vector_negation(models):
    model, ref = models
    neg = METHODS["task_vector"].evaluate_as(model, ref, {"alpha": 2.0})
    for (n, p), p0, q in zip(model.named_parameters(), ref.parameters(), neg.parameters()):
        torch.testing.assert_close(q, p0 - 2.0 * (p - p0), msg=n)


def test_gd_term_lowers_retain_loss(tiny):
    model = build_model(tiny.model, V, seed=0)
    r = batch(2)
    before = reference_chunk_nll(model, r).mean().item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        # the retain term of ga_gd on its own (an empty forget term would be GA)
        (loss_of("ga_gd_in", model, None, {"forget": r, "retain": r}, **{"lambda": 2.0})).backward()
        opt.step()
    assert reference_chunk_nll(model, r).mean().item() < before


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match=r"no hyper-parameter\(s\) \['gamma'\]; it has \['beta'\]"):
        resolve_hparams(METHODS["npo"], {"gamma": 1})


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs_in_the_runner(tiny, name):
    run = ul.unlearn(tiny, "books", name, steps=2, progress=False)
    s = run.summary
    assert s["status"] in {"finished", "diverged"}
    assert s["evals"][0]["step"] == 0 and {"ppl_forget", "ppl_general"} <= set(s["evals"][0])
