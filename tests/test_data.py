import json

import pytest

from llmunlearn.config import IGNORE_INDEX
from llmunlearn.data.corpus import (
    build_corpus,
    chunk_documents,
    chunk_token_ids,
    load_splits,
    split_documents,
)
from llmunlearn.models import train_tokenizer
from llmunlearn.data.sources import Document, SourceUnavailable, SOURCES


def test_chunks_are_consecutive_non_overlapping_and_short_tails_dropped():
    ids = list(range(23))
    assert chunk_token_ids(ids, 10) == [list(range(10)), list(range(10, 20))]  # tail of 3
    assert chunk_token_ids(list(range(25)), 10)[-1] == list(range(20, 25))  # tail of 5 kept
    assert chunk_token_ids([1, 2, 3, 4], 10) == []


def test_chunk_documents_follows_the_paper(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    ds = chunk_documents(tok, docs[:2], chunk_len=16)
    first = tok(docs[0].text, add_special_tokens=False)["input_ids"]
    assert ds[0]["input_ids"].tolist() == first[:16]  # no BOS: the document starts the chunk
    assert ds[0]["doc_id"] == "doc0"
    for r in ds:
        pad = r["attention_mask"] == 0
        assert (r["labels"][pad] == IGNORE_INDEX).all()
        assert (r["labels"][~pad] == r["input_ids"][~pad]).all()
        assert int((~pad).sum()) >= 5
    doc0 = [r for r in ds if r["doc_id"] == "doc0"]  # chunks tile the document in order
    joined = sum((r["input_ids"][r["attention_mask"] == 1].tolist() for r in doc0), [])
    assert joined == first[: len(joined)] and len(first) - len(joined) < 5


def test_tokenizer_round_trips_text(docs):
    tok = train_tokenizer([d.text for d in docs], 300)
    text = "def f(x):\n    return x ** 2  # ünïcödé"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def _splits(profile, docs, **kw):
    return split_documents(docs, profile.data, profile.seed, "arxiv", **kw)


def test_splits_are_disjoint_deterministic_and_full(tiny, docs):
    dup = Document("copy-of-doc0", docs[0].text, "another-group", "test", "CC0")
    p = tiny.replace(
        **{
            "min_doc_chars": 0,
            "forget_chars": 250,
            "approximate_chars": 250,
            "retain_chars": 500,
        }
    )
    a = _splits(p, docs + [dup])
    b = _splits(p, list(reversed(docs + [dup])))
    assert {s: [d.id for d in v] for s, v in a.items()} == {
        s: [d.id for d in v] for s, v in b.items()
    }
    assert set(a) == {
        "shifted/forget",
        "shifted/approximate",
        "matched/forget",
        "matched/approximate",
        "retain",
    }
    shas = [d.sha256 for v in a.values() for d in v]
    assert len(shas) == len(set(shas))  # no text in two splits
    for split, docs_ in a.items():
        assert sum(len(d.text) for d in docs_) >= getattr(p, f"{split.split('/')[-1]}_chars")
    # the shifted design keeps groups whole: none of its groups is anywhere else
    shifted = {d.group for k in ("shifted/forget", "shifted/approximate") for d in a[k]}
    others = {d.group for k in ("matched/forget", "matched/approximate", "retain") for d in a[k]}
    assert not shifted & others
    assert not (
        {d.group for d in a["shifted/forget"]} & {d.group for d in a["shifted/approximate"]}
    )


def test_pinned_groups_feed_only_their_shifted_split(tiny, docs):
    p = tiny.replace(
        **{
            "min_doc_chars": 0,
            "forget_chars": 200,
            "approximate_chars": 200,
            "retain_chars": 400,
        }
    )
    out = _splits(p, docs, shifted_pins={"forget": ("group1",), "approximate": ("group2",)})
    assert {d.group for d in out["shifted/forget"]} == {"group1"}
    assert {d.group for d in out["shifted/approximate"]} == {"group2"}
    rest = {d.group for k in ("matched/forget", "matched/approximate", "retain") for d in out[k]}
    assert not rest & {"group1", "group2"}


def test_matched_forget_and_approximate_are_drawn_from_one_pool_of_many_groups(tiny):
    """Forget and approximate are documents drawn from the same groups (exchangeable),
    not one group against another."""
    docs = [
        Document(f"g{g}/d{i}", f"text {g} {i} " * 20, f"g{g}", "test", "CC0")
        for g in range(12)
        for i in range(10)
    ]
    p = tiny.replace(
        **{
            "min_doc_chars": 0,
            "forget_chars": 2_000,
            "approximate_chars": 2_000,
            "retain_chars": 3_000,
        }
    )
    out = _splits(p, docs)
    forget = {d.group for d in out["matched/forget"]}
    approx = {d.group for d in out["matched/approximate"]}
    assert len(forget) >= 3 and len(forget & approx) >= 2


def test_books_retain_is_the_other_austen_novels_first(tiny):
    """The real books design (sources.py): shifted forget Pride and Prejudice, shifted
    approximate Sense and Sensibility, and matched sets and retain from the other Austen
    novels, other books only when those run out."""
    from conftest import REAL_BOOKS_PINS, REAL_BOOKS_POOL

    austen = ("Emma", "Mansfield Park", "Northanger Abbey", "Persuasion")
    books = (*austen, "Pride and Prejudice", "Sense and Sensibility", "Bible: Genesis", "Moby Dick")
    docs = [
        Document(f"{b}/{i}", f"{b} passage {i} " * 30, b, "test", "CC0")
        for b in books
        for i in range(40)
    ]
    p = tiny.replace(
        **{
            "min_doc_chars": 0,
            "forget_chars": 3_000,
            "approximate_chars": 3_000,
            "retain_chars": 12_000,
        }
    )
    out = split_documents(docs, p.data, p.seed, "books", REAL_BOOKS_PINS, REAL_BOOKS_POOL)
    assert {d.group for d in out["shifted/forget"]} == {"Pride and Prejudice"}
    assert {d.group for d in out["shifted/approximate"]} == {"Sense and Sensibility"}
    for key in ("matched/forget", "matched/approximate", "retain"):
        assert {d.group for d in out[key]} <= set(austen), key


def test_a_split_that_cannot_be_filled_names_domain_design_split_and_sizes(tiny, docs):
    p = tiny.replace(
        **{
            "min_doc_chars": 0,
            "forget_chars": 300,
            "approximate_chars": 300,
            "retain_chars": 100_000,
        }
    )
    with pytest.raises(
        ValueError,
        match=r"domain 'arxiv': split 'retain' has [\d,]+ "
        r"characters in \d+ documents from \d+ groups .* "
        r"needs 100,000",
    ):
        _splits(p, docs)
    p = tiny.replace(**{"min_doc_chars": 0, "forget_chars": 50_000})
    with pytest.raises(ValueError, match=r"domain 'arxiv', design 'shifted': split 'forget'"):
        _splits(p, docs)


def test_an_unknown_design_is_an_error_naming_it(tiny):
    import llmunlearn as ul

    with pytest.raises(ValueError, match="unknown design 'paired'; valid: matched, shifted"):
        ul.get_profile("smoke", design="paired")
    with pytest.raises(ValueError, match="unknown design 'paired'"):
        load_splits("github", tiny, design="paired")


def test_the_tokenizer_never_saw_a_forget_set(tiny, monkeypatch):
    """What matters: per domain and design, forget text has no more tokens of its own
    (types that never occur in the retrained model's training text) than unseen
    approximate text of the same kind. Each fake group repeats a name of its own, as a
    novel does; a tokenizer trained on all of D (forget included) merges the forget
    groups' names into tokens that only forget text uses, and fails the same check."""
    from conftest import fake_source
    from llmunlearn.data.corpus import forget_documents, pretraining_documents
    from llmunlearn.studies.retraining import token_coverage, unseen_token_share
    from llmunlearn.models import train_tokenizer
    from llmunlearn.data.sources import MATCHED_POOL, SHIFTED_PINS, SOURCES

    for domain in SOURCES:  # larger fake sources: token statistics need some text
        monkeypatch.setitem(SOURCES, domain, (fake_source(domain, 160),))
    monkeypatch.setitem(
        SHIFTED_PINS,
        "books",
        {
            "forget": tuple(f"books/g{i}" for i in range(4)),
            "approximate": tuple(f"books/g{i}" for i in range(4, 8)),
        },
    )
    monkeypatch.setitem(MATCHED_POOL, "books", ())
    p = tiny.replace(
        **{
            "forget_chars": 6000,
            "approximate_chars": 6000,
            "retain_chars": 12000,
            "general_retain_chars": 12000,
        }
    )
    table = token_coverage(p)
    forget, approx = table["unseen share: forget"], table["unseen share: approximate"]
    assert (forget <= 2 * approx + 0.005).all(), table
    leaky = train_tokenizer([d.text for d in pretraining_documents(p)], p.vocab_size)
    for domain in ("books", "github"):
        left_out = forget_documents(p, domain, "shifted")
        seen = [d for d in pretraining_documents(p) if d not in left_out]
        splits = load_splits(domain, p, "shifted")
        leaky_forget = unseen_token_share(leaky, splits["forget"], seen)
        leaky_approx = unseen_token_share(leaky, splits["approximate"], seen)
        assert leaky_forget > 2 * leaky_approx + 0.005, (domain, leaky_forget, leaky_approx)


def test_corpus_manifest_records_every_document(tiny):
    path = build_corpus(tiny, progress=lambda msg: None)
    manifest = json.loads(path.read_text())
    assert set(manifest["domains"]) == {"arxiv", "github", "books", "general"}
    github = manifest["domains"]["github"]
    assert set(github["counts"]) == {
        "shifted/forget",
        "shifted/approximate",
        "matched/forget",
        "matched/approximate",
        "retain",
        "heldout",
    }
    assert len(github["documents"]) == sum(c["documents"] for c in github["counts"].values())
    assert all(len(d["sha256"]) == 64 and d["license"] and d["source"] for d in github["documents"])
    assert set(manifest["domains"]["general"]["counts"]) == {"evaluation", "retain"}


def test_a_failing_source_is_named_and_the_other_domains_still_build(tiny, monkeypatch):
    def broken():
        raise SourceUnavailable(
            "could not download Debian package 'r-cran-zoo'; "
            "fetch it by hand with: apt-get download r-cran-zoo"
        )

    monkeypatch.setitem(SOURCES, "arxiv", (broken,))
    with pytest.raises(SourceUnavailable, match="r-cran-zoo"):
        build_corpus(tiny, progress=lambda msg: None)
    manifest = json.loads(
        next(
            (tiny and __import__("llmunlearn").home() / "data").glob("manifest-*.json")
        ).read_text()
    )
    assert "arxiv" in manifest["errors"] and "github" in manifest["domains"]


def test_a_corrupted_cache_file_is_rebuilt_not_used(tiny):
    first = load_splits("github", tiny)
    from llmunlearn.runs import home

    cache = next((home() / "data").glob("github-*.json"))
    cache.write_text(cache.read_text().replace("github/", "tampered/"))
    with pytest.warns(UserWarning, match="does not match its sha256"):
        again = load_splits("github", tiny)
    assert [d.id for d in again["forget"]] == [d.id for d in first["forget"]]


def _fake_apt(tmp_path, monkeypatch, known):
    """An ``apt-get`` on PATH that serves real .deb files built here for ``known`` names,
    fails (as apt does, downloading nothing) when any name is unknown, and logs each
    call."""
    import shutil
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.fail("these tests need dpkg-deb (Debian's dpkg), which the set-up provides")
    pool, bin_ = tmp_path / "pool", tmp_path / "bin"
    pool.mkdir()
    bin_.mkdir()
    for name in known:
        pkg = tmp_path / "build" / name
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "usr/share").mkdir(parents=True)
        (pkg / "usr/share" / f"{name}.txt").write_text(f"text of {name}\n")
        (pkg / "DEBIAN/control").write_text(
            f"Package: {name}\nVersion: 1.0-{len(name)}\nArchitecture: all\n"
            "Maintainer: t <t@example.org>\nDescription: test\n"
        )
        subprocess.run(
            ["dpkg-deb", "--build", str(pkg), str(pool / f"{name}_1.0_all.deb")],
            check=True,
            capture_output=True,
        )
    log = tmp_path / "apt.log"
    script = bin_ / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        '[ "$1" = update ] && exit 0\n'
        "shift 2\n"  # download -qq
        'for n in "$@"; do\n'
        f'  [ -f {pool}/"$n"_1.0_all.deb ] || {{ echo "E: Unable to locate package $n" >&2; '
        "exit 100; }\n"
        "done\n"
        f'for n in "$@"; do cp {pool}/"$n"_1.0_all.deb .; done\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{__import__('os').environ['PATH']}")
    return log


def test_debian_packages_come_in_one_apt_call_and_an_unknown_one_is_named(
    tiny, tmp_path, monkeypatch
):
    from llmunlearn.data import sources

    log = _fake_apt(tmp_path, monkeypatch, ["pkg-a", "pkg-b", "pkg-c", "pkg-d"])
    monkeypatch.setattr(sources, "_APT_UPDATED", [True])  # lists are fresh
    got = sources.debian_packages(["pkg-a", "pkg-b", "pkg-c"])
    assert log.read_text().splitlines() == ["download -qq pkg-a pkg-b pkg-c"]  # one start
    for name in ("pkg-a", "pkg-b", "pkg-c"):
        root, version = got[name]
        assert (root / "usr/share" / f"{name}.txt").read_text() == f"text of {name}\n"
        assert version == f"1.0-{len(name)}"
    log.unlink()
    assert sources.debian_packages(["pkg-b"])["pkg-b"] == got["pkg-b"]  # cached: no call
    assert not log.exists()
    # one unknown name: the batch fails, each is fetched alone; the others still arrive
    got = sources.debian_packages(["pkg-b", "no-such-pkg", "pkg-d"])
    assert isinstance(got["no-such-pkg"], SourceUnavailable)
    assert "no-such-pkg" in str(got["no-such-pkg"]) and "apt-get download" in str(
        got["no-such-pkg"]
    )
    assert got["pkg-d"][1] == "1.0-5" and got["pkg-b"][1] == "1.0-5"
    assert log.read_text().splitlines() == [
        "download -qq no-such-pkg pkg-d",
        "download -qq no-such-pkg",
        "download -qq pkg-d",
    ]
    with pytest.raises(SourceUnavailable, match="no-such-pkg"):
        sources.debian_package("no-such-pkg")


def _paragraphs(text):
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def test_passages_tile_their_document_and_are_drawn_like_documents(tiny):
    """Cut at blank lines, a long document's passages are within the bound (a single
    longer paragraph stays whole), keep its paragraphs in order, and are documents of
    their own: no passage text is in two splits, and a split's passages come from many
    sources."""
    from llmunlearn.data.corpus import cut_passages, source_id

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    long = [
        Document(
            f"src{i}",
            "\n\n".join(
                " ".join(words[(i + j + k) % 10] for k in range(8 + (i + j) % 9)) for j in range(20)
            ),
            f"group{i % 7}",
            "test",
            "CC0",
        )
        for i in range(40)
    ]
    long.append(Document("wide", "x" * 500, "group0", "test", "CC0"))  # one long paragraph
    cut = cut_passages(long, 200)
    for d in long:
        parts = [p for p in cut if source_id(p.id) == d.id]
        assert sum((_paragraphs(p.text) for p in parts), []) == _paragraphs(d.text)
        assert all(len(p.text) <= 200 or len(_paragraphs(p.text)) == 1 for p in parts)
        assert {p.group for p in parts} == {d.group}
    assert cut_passages(long, None) == long
    p = tiny.replace(
        **{
            "passage_chars": 200,
            "max_doc_chars": 200,
            "min_doc_chars": 20,
            "forget_chars": 1_000,
            "approximate_chars": 1_000,
            "retain_chars": 3_000,
        }
    )
    splits = _splits(p, long)
    texts = [d.text for v in splits.values() for d in v]
    assert len(texts) == len(set(texts))
    assert all(len(t) <= 200 for t in texts)  # the long paragraph is out of bounds
    forget = splits["matched/forget"]
    assert len(forget) >= 8 and len({source_id(d.id) for d in forget}) >= 5


def test_a_passage_bound_below_the_shortest_document_is_refused():
    import llmunlearn as ul

    with pytest.raises(ValueError, match="passage_chars"):
        ul.get_profile("smoke", passage_chars=50, min_doc_chars=80)
    with pytest.raises(ValueError, match="passage_chars"):
        ul.get_profile("smoke", passage_chars=0)


def test_general_text_keeps_whole_documents_within_its_own_bounds(tiny):
    """The unlearning domains are cut into passages; general text is not (the utility
    battery reads half-chunk contexts from it), and its bounds are its own."""

    from llmunlearn.data.corpus import document_bounds

    p = tiny.replace(passage_chars=200, max_doc_chars=200, min_doc_chars=20)
    assert document_bounds(p.data, "arxiv") == p.data
    general = document_bounds(p.data, "general")
    assert general.passage_chars is None
    assert (general.min_doc_chars, general.max_doc_chars) == tiny.general_doc_chars
    for bad in ((5, 2), (1,), (1.5, 4), [1, 4]):
        with pytest.raises(ValueError, match="general_doc_chars"):
            ul_profile("smoke", general_doc_chars=bad)


def ul_profile(name, **kw):
    import llmunlearn as ul

    return ul.get_profile(name, **kw)


def test_chunks_kept_in_the_process_are_the_chunks_of_the_tokenizer_asked_for(tiny):
    """The grid's runs share one tokenisation of a domain: what they get must be what
    tokenising again gives, for the same vocabulary; another vocabulary gets its own."""
    from llmunlearn.data import corpus

    docs = [d for split in load_splits("arxiv", tiny).values() for d in split]
    tok = train_tokenizer([d.text for d in docs], 300)
    first = corpus.chunked_splits(tiny, "arxiv", tok)
    again = corpus.chunked_splits(tiny, "arxiv", train_tokenizer([d.text for d in docs], 300))
    corpus._CHUNKED.clear()
    fresh = corpus.chunked_splits(tiny, "arxiv", tok)
    other = corpus.chunked_splits(tiny, "arxiv", train_tokenizer([d.text for d in docs], 400))
    for split in first:
        assert again[split] is first[split]  # the same vocabulary: kept, not tokenised again
        assert first[split][:]["input_ids"].tolist() == fresh[split][:]["input_ids"].tolist()
        assert list(first[split]["doc_id"]) == list(fresh[split]["doc_id"])
    assert any(
        other[s][:]["input_ids"].tolist() != first[s][:]["input_ids"].tolist() for s in first
    )
    shorter = tiny.replace(**{"chunk_len": 16})  # a run field: its own
    assert corpus.chunked_splits(shorter, "arxiv", tok)["forget"][:]["input_ids"].shape[1] == 16


def test_a_machine_without_debian_12_s_package_takes_the_newest_of_its_family(
    tmp_path, monkeypatch
):
    """Debian 13 and Ubuntu 24.04 have no golang-1.19-src: the newest golang-1.N-src the
    package manager offers stands in, and its name is what the documents record."""
    from llmunlearn.data import sources

    root = tmp_path / "root"
    (root / "usr/share/go-1.24/src/testdata").mkdir(parents=True)
    (root / "usr/share/go-1.24/src/testdata/Isaac.Newton-Opticks.txt").write_text(
        "THE FIRST BOOK OF OPTICKS\n\n" + "Light is refracted. " * 400
    )
    asked = []

    def fake_packages(names):
        asked.extend(names)
        return {
            n: (root, "1.24.1-1")
            if n == "golang-1.24-src"
            else sources.SourceUnavailable(f"no package {n}")
            for n in names
        }

    monkeypatch.setattr(sources, "debian_packages", fake_packages)
    monkeypatch.setattr(
        sources,
        "_apt_names",
        lambda prefix: ["golang-1.22-src", "golang-1.24-src", "golang-1.24-go"],
    )
    name, got, version = sources.debian_package_family(sources.GO_SRC, sources.GO_SRC_PATTERN)
    assert (name, got, version) == ("golang-1.24-src", root, "1.24.1-1")
    assert asked == ["golang-1.19-src", "golang-1.24-src"]  # the preferred one first
    docs = sources.opticks()
    assert docs and all("golang-1.24-src 1.24.1-1" in d.source for d in docs)
    monkeypatch.setattr(sources, "_apt_names", lambda prefix: [])
    with pytest.raises(sources.SourceUnavailable, match="no other package matching"):
        sources.debian_package_family(sources.GO_SRC, sources.GO_SRC_PATTERN)
