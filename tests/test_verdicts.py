"""Issue 22's design and verdict rules: held-out retain, the manifest's splits, the late
pre-training order, three-way decisions (their rules: test_decisions.py)."""

import json

import pandas as pd
import pytest

import llmunlearn as ul
from llmunlearn.data.corpus import HELDOUT, hold_out, load_splits, pretraining_documents


def test_held_out_retain_is_disjoint_from_the_regulariser_and_in_pre_training(tiny):
    p = tiny.replace(heldout_share=0.4)
    seen = {d.id for d in pretraining_documents(p)}
    for domain in ul.DOMAINS:
        s = load_splits(domain, p)
        reg, held = {d.id for d in s["retain"]}, {d.id for d in s[HELDOUT]}
        assert reg and held and not reg & held
        assert held <= seen and reg <= seen  # both in pre-training
        assert not held & ({d.id for d in s["forget"]} | {d.id for d in s["approximate"]})
    # the unlearning runs regularise on ``retain`` and measure utility on the held-out
    # part: the evaluation set's documents are never in the regulariser's stream
    from llmunlearn.data.corpus import domain_chunks
    from llmunlearn.evaluation import evaluation_sets
    from llmunlearn.training.pretraining import pretraining_tokenizer

    tok = pretraining_tokenizer(p)
    chunks, general = domain_chunks(p, "github", tok)
    sets = evaluation_sets(p.unlearning, p.seed, chunks, general)
    assert not set(sets["retain"]["doc_id"]) & set(chunks["retain"]["doc_id"])
    assert len(sets["forget"]) == len(chunks["forget"])  # every forget chunk


def test_hold_out_is_seeded_and_refuses_a_share_that_leaves_a_side_empty(docs):
    a, b = hold_out(docs, 0.25, 42)
    assert (a, b) == hold_out(list(reversed(docs)), 0.25, 42)
    assert len(b) == 3 and len(a) == 9
    with pytest.raises(ValueError, match="heldout_share"):
        hold_out(docs[:1], 0.5, 42)


def test_the_manifest_names_every_documents_split_and_none_is_in_two(tiny):
    p = tiny.replace(heldout_share=0.4)
    path = ul.build_corpus(p, progress=lambda *_: None)
    manifest = json.loads(path.read_text())
    for domain, entry in manifest["domains"].items():
        rows = entry["documents"]
        splits = {r["split"] for r in rows}
        if domain != "general":
            assert {"matched/forget", "matched/approximate", "retain", HELDOUT} <= splits
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), domain  # no document in two splits


def test_late_order_retrained_models_branch_from_a_base_that_never_saw_a_forget_chunk(tiny):
    """The late order: the base is trained on D minus every forget set; the original and
    each retrained model continue from it; the retrained model's slice holds none of its
    forget chunks and is otherwise the original's slice, in the same order."""
    from llmunlearn.data.corpus import chunk_documents, forget_documents
    from llmunlearn.training.pretraining import forget_ids, pretraining_tokenizer, slice_order

    p = tiny.replace(pretrain_order="late", forget_insertion="omit")
    original = ul.pretrain(p, progress=False)
    retrained = ul.pretrain(p, without="github", progress=False)
    assert original.summary["base"] == retrained.summary["base"]
    assert retrained.summary["branch_tokens"] < original.summary["branch_tokens"]
    assert retrained.summary["tokens"] > retrained.summary["branch_tokens"]
    base = json.loads(
        (ul.home() / "pretrain" / original.summary["base"] / "config.json").read_text()
    )
    forget = {d.sha256 for domain in ul.DOMAINS for d in forget_documents(p, domain, p.design)}
    assert not forget & set(base["docs"])
    tok = pretraining_tokenizer(p)
    ids = list(chunk_documents(tok, pretraining_documents(p), p.chunk_len)["doc_id"])
    order = slice_order(ids, forget_ids(p), p.pretraining, p.seed)
    left_out = {d.id for d in forget_documents(p, "github", p.design)}
    kept = [i for i in order if ids[i] not in left_out]
    assert len(kept) < len(order) and all(ids[i] in left_out for i in set(order) - set(kept))


def test_a_retrained_model_by_replacement_takes_the_original_s_steps_and_no_forget_chunk(tiny):
    """Replacement (issue 35): the retrained model's slice is the original's with each of
    its domain's forget chunks replaced by a chunk replayed from D minus every forget set;
    the same length and the same chunks elsewhere, so both models take the same steps and
    the retrained model never sees a forget token of its domain."""
    from llmunlearn.data.corpus import chunk_documents, forget_documents
    from llmunlearn.training.pretraining import (
        forget_ids,
        pretraining_tokenizer,
        retrained_order,
        slice_order,
    )

    p = tiny.replace(pretrain_order="late", forget_insertion="replace")
    tok = pretraining_tokenizer(p)
    train_set = chunk_documents(tok, pretraining_documents(p), p.chunk_len)
    ids = list(train_set["doc_id"])
    forget = forget_ids(p)
    order = slice_order(ids, forget, p.pretraining, p.seed)
    removed = {d.id for d in forget_documents(p, "github", p.design)}
    new = retrained_order(order, ids, removed, forget, p.pretraining, p.seed)
    assert len(new) == len(order)
    changed = [k for k, (a, b) in enumerate(zip(order, new)) if a != b]
    assert changed == [k for k, i in enumerate(order) if ids[i] in removed]
    assert not {ids[new[k]] for k in changed} & forget  # replayed from D minus every forget set
    assert not any(ids[i] in removed for i in new)
    # its tokens: no chunk of the retrained model's slice holds a forget token sequence
    forget_chunks = {tuple(train_set[i]["input_ids"]) for i in range(len(ids)) if ids[i] in removed}
    assert not forget_chunks & {tuple(train_set[i]["input_ids"]) for i in new}
    original = ul.pretrain(p, progress=False)
    retrained = ul.pretrain(p, without="github", progress=False)
    assert retrained.summary["steps"] == original.summary["steps"]
    assert len(retrained.summary["log"]) == len(original.summary["log"])
    omitted = retrained_order(
        order, ids, removed, forget, p.replace(forget_insertion="omit").pretraining, p.seed
    )
    assert len(omitted) == len(order) - len(changed)


def test_the_dose_pilot_refuses_bad_doses_before_anything_trains(tiny):
    for bad in ([], [2, 1], [0, 1], [1, 32]):
        with pytest.raises(ValueError, match="doses"):
            ul.dose_pilot(tiny, bad)
        with pytest.raises(ValueError, match="pilot_doses"):
            ul.get_profile("smoke", pilot_doses=tuple(bad))
    assert not (ul.home() / "pretrain").exists()


def test_the_dose_pilot_measures_each_dose_against_its_own_retrained_models(tiny):
    frame = ul.dose_pilot(tiny, (1, 2), progress=False, stop=False)
    assert list(frame.index.get_level_values("dose").unique()) == [1, 2]
    assert set(frame.index.get_level_values("domain")) == set(ul.DOMAINS)
    assert (frame["low"] <= frame["difference"]).all() and (
        frame["difference"] <= frame["high"]
    ).all()
    assert (frame["AUC low"] <= frame["AUC high"]).all()
    assert (frame["separable"] == (frame["low"] > ul.AUC_MARGIN)).all()
    choice = ul.dose_choice(frame)
    assert choice is None or choice in (1, 2)
    if choice is not None:
        at = frame.xs(choice, level="dose")
        assert at["separable"].all() and at["positive control passes"].all()
    # the positive control is judged by the rules, so it can fail them: its AUC difference
    # carries an interval, and "passes" is the forget and membership rules together
    measured = frame[frame["positive control passes"].notna()]
    assert len(measured) >= len(ul.DOMAINS)  # the first dose always has its controls
    assert (measured["control low"] <= measured["control high"]).all()
    low, high = measured["control low"], measured["control high"]
    equivalent = (low > -ul.AUC_MARGIN) & (high < ul.AUC_MARGIN)
    assert (~measured["positive control passes"].astype(bool) | equivalent).all()
    # above the first usable dose the controls are not trained: the rule cannot use them
    if choice is not None:
        above = frame[frame.index.get_level_values("dose") > choice]
        assert above["positive control passes"].isna().all()
    # stopping at the first separable dose gives the same choice from fewer slices
    stopped = ul.dose_pilot(tiny, (1, 2), progress=False)
    assert ul.dose_choice(stopped) == choice
    tried = list(stopped.index.get_level_values("dose").unique())
    assert tried == ([1, 2] if choice in (None, 2) else [1])


def test_the_dose_choice_needs_the_positive_control_as_well_as_separation():
    rows = []
    for dose, separable, control in [(1, True, False), (2, True, True), (4, True, True)]:
        for d in ul.DOMAINS:
            rows.append(
                {
                    "dose": dose,
                    "domain": d,
                    "separable": separable,
                    # dose 1: the positive control fails on one domain only
                    "positive control passes": control or d != ul.DOMAINS[0],
                }
            )
    frame = pd.DataFrame(rows).set_index(["dose", "domain"])
    assert ul.dose_choice(frame) == 2
    frame.loc[(2, ul.DOMAINS[1]), "separable"] = False
    assert ul.dose_choice(frame) == 4
    frame["positive control passes"] = False
    assert ul.dose_choice(frame) is None


def test_the_sibling_shares_the_referee_s_base_and_trains_on_no_forget_token(tiny, monkeypatch):
    """The positive control: the referee's recipe from the same base, its final slice drawn
    with another seed; checked on what the training loop is fed."""
    import llmunlearn.training.pretraining as pretraining
    from llmunlearn.data.corpus import chunk_documents, forget_documents

    fed = {}
    real_train = pretraining.train

    def spy(model, loss, streams, cfg, run_dir, *, orders, **kw):
        used = orders["train"][: cfg.steps * cfg.batch]
        fed[run_dir.name] = [tuple(streams["train"][i]["input_ids"].tolist()) for i in used]
        return real_train(model, loss, streams, cfg, run_dir, orders=orders, **kw)

    monkeypatch.setattr(pretraining, "train", spy)
    referee = ul.pretrain(tiny, without="github", progress=False)
    sibling = ul.siblings(tiny, progress=False)["github"]
    assert sibling.path != referee.path and sibling.config["slice seed"] == ul.sibling_seed(
        tiny.seed
    )
    assert sibling.summary["base"] == referee.summary["base"]  # the same base, not retrained
    assert sibling.summary["steps"] == referee.summary["steps"]
    assert fed[sibling.path.name] != fed[referee.path.name]  # its own draws
    tok = pretraining.pretraining_tokenizer(tiny)
    forget = chunk_documents(tok, forget_documents(tiny, "github", tiny.design), tiny.chunk_len)
    assert not {tuple(r.tolist()) for r in forget["input_ids"]} & set(fed[sibling.path.name])
    assert ul.siblings(tiny.replace(pretrain_order="mixed")) == {}
    with pytest.raises(ValueError, match="slice_seed=7 needs pretrain_order='late'"):
        ul.pretrain(tiny.replace(pretrain_order="mixed"), without="github", slice_seed=7)


def _quant_frame(domain, forget):
    """A quantisation frame: model -> (fp32, 4-bit) forget perplexity."""
    import math

    import pandas as pd

    rows = [
        {"domain": domain, "model": m, "bits": b, "ppl_forget": v}
        for m, (f32, f4) in forget.items()
        for b, v in ((32, f32), (4, f4))
    ]
    frame = pd.DataFrame(rows)
    fp = frame[frame["bits"] == 32].set_index("model")["ppl_forget"]
    frame["undone"] = [
        math.nan
        if r.model == "original"
        else math.log(fp[r.model] / r.ppl_forget) / math.log(fp[r.model] / fp["original"])
        for r in frame.itertuples()
    ]
    return frame


def test_quantisation_decisions_read_a_tie_as_equivalence_only_when_it_is_bounded():
    from llmunlearn.studies.claims import quantisation_decisions

    frames = {
        # 4 bits takes back half of each method's change, the retrained model's not at all
        "back": _quant_frame(
            "back",
            {"original": (10, 10), "retrained": (20, 20), "ga": (20, 14.14), "npo": (40, 20)},
        ),
        # nothing moves: equivalent to no effect, a refutation bounded below a tenth
        "still": _quant_frame(
            "still",
            {"original": (10, 10), "retrained": (20, 20), "ga": (20, 20.01), "npo": (40, 40)},
        ),
        # quantisation moves the original itself as far as the methods are from it
        "noisy": _quant_frame(
            "noisy", {"original": (10, 20), "retrained": (20, 20), "ga": (20, 19), "npo": (40, 38)}
        ),
    }
    d = quantisation_decisions(frames)["decision"].to_dict()
    assert d == {"back": "supports", "still": "contradicts", "noisy": "undetermined (within noise)"}


def test_a_retrained_model_is_measured_where_a_rule_reads_it(tiny):
    """The original on every split of both designs; a retrained model on its own domain's
    splits of its design, the other domains' approximate set of its design (the ground
    truth's control) and general, and nowhere else."""
    zoo = ul.pretrain_zoo(tiny, progress=False)
    everything = zoo["original"].summary["ppl"]
    assert {"matched/forget", "shifted/forget", "retain", HELDOUT} <= set(everything["github"])
    r = zoo["retrained-github"].summary["ppl"]
    assert set(r["github"]) == {"matched/forget", "matched/approximate", "retain", HELDOUT}
    assert set(r["arxiv"]) == set(r["books"]) == {"matched/approximate"}
    assert set(r["general"]) == set(everything["general"])
