"""Issue 22's design and verdict rules: held-out retain, the manifest's splits, the late
pre-training order, three-way decisions that never read a tie as a refutation."""

import dataclasses
import json

import pytest

import llmunlearn as ul
from llmunlearn.claims import compare, overall
from llmunlearn.data import HELDOUT, hold_out, load_splits, pretraining_documents


def test_compare_needs_every_replicate_and_a_difference_beyond_their_spread():
    assert compare([0.6, 0.5], [0.2, 0.1]) == "supports"
    assert compare([0.1, 0.2], [0.5, 0.6]) == "contradicts"
    assert compare([0.6, 0.1], [0.2, 0.3]) == "undetermined"  # replicates disagree
    assert compare([0.5, 0.2], [0.3, 0.15]) == "undetermined"  # within the spread
    assert compare([0.0, 0.0], [0.0, 0.0]) == "undetermined"  # a tie refutes nothing
    assert compare([0.3], [0.1]) == "undetermined"  # one replicate: no spread known
    assert compare([0.3], [0.1], noise=0.05) == "supports"  # a spread measured elsewhere
    assert compare([0.3], [0.1], noise=0.5) == "undetermined"


def test_a_claim_is_decided_over_its_determined_domains_only():
    assert overall({"a": "supports", "b": "undetermined"}) == "supports"
    assert overall({"a": "contradicts", "b": "contradicts"}) == "contradicts"
    assert overall({"a": "supports", "b": "contradicts"}) == "mixed"
    assert overall({"a": "undetermined", "b": "undetermined"}) == "not testable here"


def test_held_out_retain_is_disjoint_from_the_regulariser_and_in_pre_training(tiny):
    p = dataclasses.replace(tiny, heldout_share=0.4)
    seen = {d.id for d in pretraining_documents(p)}
    for domain in ul.DOMAINS:
        s = load_splits(domain, p)
        reg, held = {d.id for d in s["retain"]}, {d.id for d in s[HELDOUT]}
        assert reg and held and not reg & held
        assert held <= seen and reg <= seen  # both in pre-training
        assert not held & ({d.id for d in s["forget"]} | {d.id for d in s["approximate"]})
    # the unlearning runs regularise on ``retain`` and measure utility on the held-out
    # part: the evaluation set's documents are never in the regulariser's stream
    from llmunlearn.data import domain_chunks
    from llmunlearn.evaluation import evaluation_sets
    from llmunlearn.pretraining import pretraining_tokenizer

    tok = pretraining_tokenizer(p)
    chunks, general = domain_chunks(p, "github", tok)
    sets = evaluation_sets(p, chunks, general)
    assert not set(sets["retain"]["doc_id"]) & set(chunks["retain"]["doc_id"])
    assert len(sets["forget"]) == len(chunks["forget"])  # every forget chunk


def test_hold_out_is_seeded_and_refuses_a_share_that_leaves_a_side_empty(docs):
    a, b = hold_out(docs, 0.25, 42)
    assert (a, b) == hold_out(list(reversed(docs)), 0.25, 42)
    assert len(b) == 3 and len(a) == 9
    with pytest.raises(ValueError, match="heldout_share"):
        hold_out(docs[:1], 0.5, 42)


def test_the_manifest_names_every_documents_split_and_none_is_in_two(tiny):
    p = dataclasses.replace(tiny, heldout_share=0.4)
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
    from llmunlearn.data import chunk_documents, forget_documents
    from llmunlearn.pretraining import _forget_ids, pretraining_tokenizer, slice_order

    p = dataclasses.replace(tiny, pretrain_order="late")
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
    order = slice_order(ids, _forget_ids(p), p, p.seed)
    left_out = {d.id for d in forget_documents(p, "github", p.design)}
    kept = [i for i in order if ids[i] not in left_out]
    assert len(kept) < len(order) and all(ids[i] in left_out for i in set(order) - set(kept))
