"""Real text for the four domains, fetched through the package registries at set-up time.

Nothing third-party is committed: each source below downloads a Debian or PyPI package
into ``<home>/downloads``, unpacks it, and turns it into :class:`Document` objects that
carry their source package, version and licence. ``../shared/docs/sources.md`` lists what
was verified. A source that cannot be fetched raises :class:`SourceUnavailable` naming the
package and the command to fetch it by hand.

| domain | documents | group (a unit the ``shifted`` design keeps whole) |
|---|---|---|
| github | source files: Python, Go and Rust standard libraries | package (``go/net``) |
| arxiv | sections of journal articles in LaTeX (R package vignettes) | article |
| books | passages (at most :data:`PASSAGE_CHARS`) of chapters of public-domain books | book |
| general | Wikipedia articles and news stories | article |
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import warnings
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import rdata

from ..runs import home


@dataclass(frozen=True)
class Document:
    id: str  # unique within a domain, e.g. "python/json/decoder.py"
    text: str
    group: str  # documents of one group always land in the same split (a book, an article)
    source: str  # package and version it came from
    license: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


class SourceUnavailable(RuntimeError):
    """A package could not be fetched; the message says how to fetch it by hand."""


# ------------------------------------------------------------------------ fetching --
def _downloads() -> Path:
    path = home() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


_APT_UPDATED: list[bool] = []  # apt-get update runs at most once per process


def debian_package(name: str) -> tuple[Path, str]:
    """Download and unpack Debian package ``name``; returns (unpacked root, version)."""
    got = debian_packages([name])[name]
    if isinstance(got, SourceUnavailable):
        raise got
    return got


def _apt_download(names, cwd: Path) -> subprocess.CompletedProcess:
    """``apt-get download`` of ``names`` into ``cwd`` (one apt start for all; once per
    process, stale or missing package lists are updated and the call retried)."""
    cmd = ["apt-get", "download", "-qq", *names]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0 and not _APT_UPDATED:
        _APT_UPDATED.append(True)
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return res


def debian_packages(names) -> dict[str, tuple[Path, str] | SourceUnavailable]:
    """:func:`debian_package` for every name: name -> (unpacked root, version), or the
    :class:`SourceUnavailable` that says why it could not be fetched (so a caller may skip
    it). The missing packages come in one ``apt-get download`` (one apt start instead of
    one per package: 32 R packages in 4 s instead of 60); if that call fails, because
    one of them is unknown, each is fetched alone, so the others still arrive."""
    names = list(dict.fromkeys(names))
    dests = {n: _downloads() / "debian" / n for n in names}
    out: dict = {}
    todo = [n for n in names if not (dests[n] / ".complete").exists()]
    if todo and (shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None):
        for n in todo:
            out[n] = SourceUnavailable(
                f"Debian package {n!r} needs apt-get and dpkg-deb, "
                f"which this machine lacks; on a Debian machine, {_debian_hint(n, dests[n])}"
            )
        todo = []
    missing = [n for n in todo if not list(dests[n].glob(f"{n}_*.deb"))]
    if len(missing) > 1:
        batch = _downloads() / "debian" / ".batch"
        shutil.rmtree(batch, ignore_errors=True)
        batch.mkdir(parents=True)
        if _apt_download(missing, batch).returncode == 0:
            for n in missing:
                for deb in batch.glob(f"{n}_*.deb"):
                    dests[n].mkdir(parents=True, exist_ok=True)
                    shutil.move(str(deb), dests[n] / deb.name)
        shutil.rmtree(batch, ignore_errors=True)
    for n in todo:
        dest = dests[n]
        dest.mkdir(parents=True, exist_ok=True)
        debs = list(dest.glob(f"{n}_*.deb"))
        if not debs:
            res = _apt_download([n], dest)
            debs = list(dest.glob(f"{n}_*.deb"))
            if res.returncode != 0 or not debs:
                out[n] = SourceUnavailable(
                    f"could not download Debian package {n!r}: "
                    f"{(res.stderr or res.stdout).strip()[-300:]}; {_debian_hint(n, dest)}"
                )
                continue
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(dest / "root")], check=True)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(debs[0]), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        (dest / ".complete").write_text(version)
    for n in names:
        if n not in out:
            out[n] = (dests[n] / "root", (dests[n] / ".complete").read_text().strip())
    return out


def _apt_names(prefix: str) -> list[str]:
    """Debian package names starting with ``prefix`` that apt knows (``apt-cache
    pkgnames``; after an ``apt-get update`` when it knows none)."""
    if shutil.which("apt-cache") is None:
        return []
    res = subprocess.run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True)
    if not res.stdout.strip() and not _APT_UPDATED:
        _APT_UPDATED.append(True)
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        res = subprocess.run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True)
    return res.stdout.split()


def _version_key(name: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def debian_package_family(preferred: str, pattern: str) -> tuple[str, Path, str]:
    """(name, unpacked root, version) of Debian package ``preferred`` or, where this
    machine's package manager does not offer it (Debian 13 and Ubuntu 24.04 have no
    ``golang-1.19-src`` or ``libpython3.11-stdlib``), of the newest package whose name
    matches ``pattern`` (a regular expression; the newest by the numbers in its name): the
    same kind of text, another version, and the name used is recorded with every
    document. A ``SourceUnavailable`` names both when none can be had."""
    got = debian_packages([preferred])[preferred]
    if not isinstance(got, SourceUnavailable):
        return preferred, *got
    prefix = preferred.split(".")[0].rstrip("0123456789")  # "golang-1.19-src" -> "golang-"
    names = sorted(
        (n for n in _apt_names(prefix) if re.fullmatch(pattern, n) and n != preferred),
        key=_version_key,
        reverse=True,
    )
    for name in names:
        alt = debian_packages([name])[name]
        if not isinstance(alt, SourceUnavailable):
            return name, *alt
    raise SourceUnavailable(
        f"{got}; no other package matching {pattern!r} could be fetched either "
        f"(apt offers: {', '.join(names) or 'none'})"
    )


def _debian_hint(name: str, dest: Path) -> str:
    return (
        f"fetch it by hand with: apt-get update && cd {dest} && apt-get download {name}"
        f" && dpkg-deb -x {name}_*.deb root && dpkg-deb -f {name}_*.deb Version > "
        ".complete"
    )


def pypi_package(spec: str, *, binary: bool) -> tuple[Path, str]:
    """Download ``spec`` (``name==version``) from PyPI without installing it and unpack
    it; returns (unpacked folder, "name version")."""
    return pypi_packages([spec], binary=binary)[0]


def _pypi_archive(name: str, version: str, files: list[Path]) -> Path | None:
    """The archive of ``name`` ``version`` among downloaded ``files`` (pip normalises
    ``-`` to ``_`` in file names)."""
    stem = re.sub(r"[-_.]+", "_", name).lower()
    for f in files:
        key = f"{stem}_{re.sub(r'[-_.]+', '_', version)}_".lower()
        if re.sub(r"[-_.]+", "_", f.name).lower().startswith(key):
            return f
    return None


def pypi_packages(specs, *, binary: bool) -> list[tuple[Path, str]]:
    """:func:`pypi_package` for every spec, the missing ones fetched by one ``pip
    download`` (one resolver start instead of one per package); returns a list of
    (unpacked folder, "name version") in the order of ``specs``."""
    specs = list(specs)
    dests = {s: _downloads() / "pypi" / "-".join(s.split("==")) for s in specs}
    missing = [s for s in specs if not (dests[s] / ".complete").exists()]
    if missing:
        batch = _downloads() / "pypi" / ".batch"
        shutil.rmtree(batch, ignore_errors=True)
        batch.mkdir(parents=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(batch),
            "--only-binary=:all:" if binary else "--no-binary=:all:",
            *missing,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        files = [f for f in batch.iterdir() if f.suffix in (".whl", ".gz", ".zip")]
        for spec in missing:
            archive = _pypi_archive(*spec.split("=="), files)
            if res.returncode != 0 or archive is None:
                raise SourceUnavailable(
                    f"could not download PyPI package {spec!r}: "
                    f"{res.stderr.strip()[-300:]}; fetch it by hand with: "
                    f"{' '.join(cmd)}"
                )
            dest = dests[spec]
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            shutil.move(str(archive), dest / archive.name)
            shutil.unpack_archive(
                dest / archive.name,
                dest / "root",
                format="zip" if archive.suffix in (".whl", ".zip") else "gztar",
            )
            (dest / ".complete").write_text("ok")
        shutil.rmtree(batch, ignore_errors=True)
    return [(dests[s] / "root", " ".join(s.split("=="))) for s in specs]


# ------------------------------------------------------------------------- github --
def _code_files(
    root: Path, pattern: str, skip: set[str], source: str, license: str, prefix: str
) -> list[Document]:
    """One document per file, grouped by package (its top-level folder under ``root``;
    a top-level module is a package of its own)."""
    docs = []
    for path in sorted(root.rglob(pattern)):
        rel = path.relative_to(root)
        if skip & set(rel.parts) or path.name.endswith("_test.go") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.append(
            Document(
                f"{prefix}/{rel.as_posix()}", text, f"{prefix}/{rel.parts[0]}", source, license
            )
        )
    return docs


GO_SRC, GO_SRC_PATTERN = "golang-1.19-src", r"golang-1\.\d+-src"
"""Go's sources: the Debian 12 package, else the newest ``golang-1.N-src`` offered."""

DEBIAN_PYTHON = "libpython3.11-stdlib"
"""The Debian package whose standard library the real-LLM chapter's contrast reads: a
fixed, recorded version, the same text on every machine (unlike the running
interpreter's)."""


def debian_python_stdlib() -> list[Document]:
    """Python's standard library from Debian :data:`DEBIAN_PYTHON` (or, where the package
    manager has another Python, its ``libpython3.N-stdlib``: :func:`debian_package_family`;
    tests, IDLE and site-packages excluded), the package and version in each document's
    source."""
    name, root, version = debian_package_family(DEBIAN_PYTHON, r"libpython3\.\d+-stdlib")
    return _code_files(
        next(root.glob("usr/lib/python3.*")),
        "*.py",
        {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"},
        f"debian {name} {version}",
        "PSF-2.0",
        "python",
    )


def python_stdlib() -> list[Document]:
    """The running interpreter's standard library (tests, IDLE, site-packages excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return _code_files(
        root,
        "*.py",
        {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"},
        f"python {platform.python_version()} standard library",
        "PSF-2.0",
        "python",
    )


def go_stdlib() -> list[Document]:
    """Go's standard library from Debian ``golang-1.19-src`` (or the newest
    ``golang-1.N-src`` the package manager offers: :func:`debian_package_family`; no tests,
    testdata, vendored code or compiler sources)."""
    name, root, version = debian_package_family(GO_SRC, GO_SRC_PATTERN)
    return _code_files(
        next(root.glob("usr/share/go-*/src")),
        "*.go",
        {"testdata", "vendor", "cmd"},
        f"debian {name} {version}",
        "BSD-3-Clause",
        "go",
    )


def rust_stdlib() -> list[Document]:
    """Rust's standard library (core, alloc, std, ...) from Debian ``rust-src``."""
    root, version = debian_package("rust-src")
    lib = next(root.glob("usr/src/rustc-*/library"))
    return _code_files(
        lib, "*.rs", {"tests", "benches"}, f"debian rust-src {version}", "MIT OR Apache-2.0", "rust"
    )


# -------------------------------------------------------------------------- arxiv --
ARXIV_PACKAGES = (
    "lme4",
    "survival",
    "sandwich",
    "pscl",
    "zoo",
    "vcd",
    "partykit",
    "coin",
    "flexmix",
    "rrcov",
    "strucchange",
    "multcomp",
    "quantreg",
    "plm",
    "aer",
    "mvtnorm",
    "lmtest",
    "mclust",
    "mgcv",
    "robustbase",
    "actuar",
    "tseries",
    "urca",
    "lavaan",
    "emmeans",
    "distr",
    "ks",
    "tm",
    "party",
    "glmmtmb",
    "spdep",
    "expm",
)
"""Debian ``r-cran-*`` packages whose vignettes are journal articles in LaTeX (.Rnw)."""

_SECTION = re.compile(r"^\\section\*?\{", re.M)


def r_vignettes(packages=ARXIV_PACKAGES) -> list[Document]:
    """LaTeX journal articles (mostly the Journal of Statistical Software) shipped as R
    package vignettes; one document per section, grouped by article. Packages that
    Debian does not have are skipped; if none can be fetched, the error names them."""
    docs, failures = [], []
    fetched = debian_packages(f"r-cran-{pkg}" for pkg in packages)
    for pkg in packages:
        got = fetched[f"r-cran-{pkg}"]
        if isinstance(got, SourceUnavailable):
            failures.append(str(got))
            continue
        root, version = got
        for rnw in sorted(root.glob("usr/lib/R/site-library/*/doc/*.Rnw")):
            text = rnw.read_text(encoding="utf-8", errors="replace")
            article = f"{pkg}/{rnw.stem}"
            parts = _SECTION.split(text)
            sections = [parts[0]] + ["\\section{" + p for p in parts[1:]]
            for i, sec in enumerate(sections):
                if sec.strip():
                    docs.append(
                        Document(
                            f"{article}/s{i:02d}",
                            sec,
                            article,
                            f"debian r-cran-{pkg} {version}",
                            "GPL (see the package's copyright file)",
                        )
                    )
    if not docs:
        raise SourceUnavailable("no R vignette could be fetched:\n" + "\n".join(failures))
    return docs


# -------------------------------------------------------------------------- books --
def _r_lazyload(base: Path) -> dict:
    """Objects of an R lazy-load database (``base.rdx`` + ``base.rdb``) without R."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = base.with_suffix(".rdx").read_bytes()  # gzip file, or zlib after a 4-byte header
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])
        index = rdata.conversion.convert(rdata.parser.parse_data(raw))
        rdb = base.with_suffix(".rdb").read_bytes()
        out = {}
        for name, (offset, length) in index["variables"].items():
            record = rdb[int(offset) : int(offset) + int(length)]
            out[str(name)] = rdata.conversion.convert(
                rdata.parser.parse_data(zlib.decompress(record[4:]))
            )
    return out


PASSAGE_CHARS = 4000
"""Book chapters are cut into passages of at most this many characters (at paragraph
breaks), so that a split of a few tens of thousands of characters holds many documents
drawn from many chapters, not a handful of long chapters."""


def passages(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """``text`` cut at blank lines into consecutive pieces of at most ``max_chars``
    characters (a single longer paragraph stays whole)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out, cur = [], ""
    for para in paragraphs:
        if cur and len(cur) + len(para) + 2 > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


def _chapters(
    text: str, pattern: str, book: str, source: str, license: str, prefix: str
) -> list[Document]:
    """Split ``text`` at lines matching ``pattern`` into chapters, and each chapter into
    :func:`passages`; one document per passage, grouped by book."""
    starts = [m.start() for m in re.finditer(pattern, text, flags=re.M)]
    if not starts:
        raise ValueError(f"no chapter heading found in {book!r}")
    bounds = starts + [len(text)]
    return [
        Document(f"{prefix}/{i + 1:03d}/p{j}", piece, book, source, license)
        for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
        for j, piece in enumerate(passages(text[a:b]))
    ]


AUSTEN = {
    "emma": "Emma",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
}


def austen_novels() -> list[Document]:
    """Jane Austen's six novels (Debian ``r-cran-janeaustenr``), one document a chapter."""
    root, version = debian_package("r-cran-janeaustenr")
    books = _r_lazyload(next(root.glob("usr/lib/R/site-library/janeaustenr/data/Rdata.rdx")))
    docs = []
    for key, title in AUSTEN.items():
        text = "\n".join(str(line) for line in books[key])
        docs += _chapters(
            text,
            r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?\s*$",
            title,
            f"debian r-cran-janeaustenr {version}",
            "public domain",
            f"austen/{key}",
        )
    return docs


def moby_dick() -> list[Document]:
    """Melville, Moby Dick (Gutenberg #2701, Debian ``r-cran-tokenizers``)."""
    root, version = debian_package("r-cran-tokenizers")
    data = _r_lazyload(next(root.glob("usr/lib/R/site-library/tokenizers/data/Rdata.rdx")))
    text = str(data["mobydick"][0])
    return _chapters(
        text,
        r"^CHAPTER \d+\.",
        "Moby Dick",
        f"debian r-cran-tokenizers {version}",
        "public domain",
        "mobydick",
    )


def kjv_bible() -> list[Document]:
    """The King James Bible (Debian ``bible-kjv-text`` and its ``bible`` reader), one
    document a chapter, grouped by book of the Bible."""
    text_root, version = debian_package("bible-kjv-text")
    prog_root, _ = debian_package("bible-kjv")
    lib = text_root / "usr/lib"
    for f in (prog_root / "usr/lib").iterdir():
        if f.is_file() and not (lib / f.name).exists():
            shutil.copy(f, lib / f.name)
    res = subprocess.run(
        [str(prog_root / "usr/bin/bible"), "-p", str(lib), "Gen1:1-Rev22:21"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0 or len(res.stdout) < 1_000_000:
        raise SourceUnavailable(
            f"the bible reader of Debian 'bible-kjv' did not run here "
            f"({res.stderr.strip()[:200]}); it is built for "
            f"{platform.machine()}-incompatible machines only if this "
            "fails, and the books domain builds without it"
        )
    heads = list(re.finditer(r"^(\S.*?) (\d+)\s*$", res.stdout, flags=re.M))
    docs = []
    for m, nxt in zip(heads, heads[1:] + [None]):
        body = res.stdout[m.start() : nxt.start() if nxt else len(res.stdout)].strip()
        book = m.group(1)
        docs += [
            Document(
                f"bible/{book}/{int(m.group(2)):03d}/p{j}",
                piece,
                f"Bible: {book}",
                f"debian bible-kjv-text {version}",
                "public domain",
            )
            for j, piece in enumerate(passages(body))
        ]
    return docs


def _dictd_number(code: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for ch in code:
        value = value * 64 + alphabet.index(ch)
    return value


def devils_dictionary() -> list[Document]:
    """Bierce, The Devil's Dictionary (Debian ``dict-devil``): passages of entries, by letter."""
    root, version = debian_package("dict-devil")
    text = gzip.decompress((root / "usr/share/dictd/devil.dict.dz").read_bytes())
    letters: dict[str, list[str]] = {}
    for line in (root / "usr/share/dictd/devil.index").read_text().splitlines():
        word, start, length = line.split("\t")
        if word.startswith("00database"):
            continue
        entry = text[_dictd_number(start) : _dictd_number(start) + _dictd_number(length)]
        letters.setdefault(word[0].upper(), []).append(entry.decode("utf-8", "replace"))
    return [
        Document(
            f"devil/{letter}/p{j}",
            piece,
            "The Devil's Dictionary",
            f"debian dict-devil {version}",
            "public domain",
        )
        for letter, entries in sorted(letters.items())
        for j, piece in enumerate(passages("\n\n".join(e.strip() for e in entries)))
    ]


def opticks() -> list[Document]:
    """Newton, Opticks (a Go test file in Debian ``golang-1.19-src`` or another
    ``golang-1.N-src``), by book/part."""
    name, root, version = debian_package_family(GO_SRC, GO_SRC_PATTERN)
    text = next(root.glob("usr/share/go-*/src/testdata/Isaac.Newton-Opticks.txt")).read_text(
        encoding="utf-8", errors="replace"
    )
    return _chapters(
        text,
        r"^(THE (FIRST|SECOND|THIRD) BOOK OF OPTICKS|_?PART [IVX]+\.?_?)\s*$",
        "Opticks",
        f"debian {name} {version}",
        "public domain",
        "opticks",
    )


# ------------------------------------------------------------------------ general --
GENSIM = "gensim==4.4.0"


def wikipedia_sample() -> list[Document]:
    """A shortened English Wikipedia dump from the gensim wheel's test data: one document
    per article (wiki markup lightly stripped)."""
    root, version = pypi_package(GENSIM, binary=True)
    dumps = sorted((root / "gensim/test/test_data").glob("enwiki-*.bz2"))
    if not dumps:
        raise SourceUnavailable(f"{GENSIM} has no enwiki-*.bz2 test file")

    docs = []
    for dump in dumps:
        for _, el in ET.iterparse(bz2.open(dump)):
            if not el.tag.endswith("}page"):
                continue
            ns = el.tag[:-4]
            title = el.findtext(f"{ns}title") or ""
            text = el.findtext(f"{ns}revision/{ns}text") or ""
            el.clear()
            if ":" in title or text.lower().startswith("#redirect"):
                continue
            plain = _strip_wiki(text)
            if plain:
                docs.append(
                    Document(
                        f"wikipedia/{title}",
                        f"{title}\n\n{plain}",
                        f"wikipedia/{title}",
                        version,
                        "CC-BY-SA-3.0",
                    )
                )
    return docs


def _strip_wiki(text: str) -> str:
    text = re.sub(r"<!--.*?-->|<ref[^>]*/>|<ref.*?</ref>", "", text, flags=re.S)
    for _ in range(3):  # nested templates and tables
        text = re.sub(r"\{\{[^{}]*\}\}|\{\|[^{}]*?\|\}", "", text, flags=re.S)
    text = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", text)
    text = re.sub(r"\[https?://\S+ ?([^\]]*)\]", r"\1", text)
    text = re.sub(r"'{2,}|<[^>]+>", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def lee_news() -> list[Document]:
    """The Lee news corpus (gensim test data): one document per news story."""
    root, version = pypi_package(GENSIM, binary=True)
    path = root / "gensim/test/test_data/lee_background.cor"
    lines = path.read_text(encoding="latin-1").splitlines()
    return [
        Document(
            f"lee/{i:03d}",
            line.strip(),
            f"lee/{i:03d}",
            version,
            "research corpus (Lee et al. 2005), redistributed with gensim",
        )
        for i, line in enumerate(lines)
        if line.strip()
    ]


# ------------------------------------------------------ code a model cannot have seen --
POST_RELEASE_PYTHON = (
    "openai-agents==0.0.6",
    "a2a-sdk==0.2.4",
    "strands-agents==0.1.0",
    "langgraph-swarm==0.0.14",
    "langgraph-supervisor==0.0.10",
    "langchain-mcp-adapters==0.0.8",
    "pydantic-evals==0.0.47",
    "pydantic-graph==0.0.19",
    "fastapi-mcp==0.1.0",
    "mcp-use==0.0.3",
    "any-agent==0.1.0",
    "kernels==0.1.7",
    "verifiers==0.1.0",
    "gepa==0.0.1",
    "kokoro==0.2.1",
    "claude-agent-sdk==0.0.23",
    "mcpadapt==0.0.10",
    "acp-sdk==0.0.1",
    "openevals==0.0.0",
    "math-verify==0.1.0",
    "python-a2a==0.1.0",
)
"""Pure-Python packages (21, by as many teams) whose *first* release on PyPI came in 2025,
after SmolLM2 was released (2024-11): code the real-LLM chapter's model cannot have been
trained on. Each is pinned to an early version with a wheel of real code (10-200 kB); the
dates are read from PyPI (:func:`pypi_dates`) and the licences (MIT or Apache-2.0) from
each wheel's METADATA into the manifest."""

PYPI_JSON = "https://pypi.org/pypi/{name}/json"
"""PyPI's JSON API: upload dates of every file of every release of a project."""


def pypi_dates(name: str, version: str) -> dict[str, str]:
    """Upload dates (ISO, UTC) from PyPI: the project's first file ever (``first_release``)
    and the first file of ``version`` (``version_release``)."""

    url = PYPI_JSON.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            project = json.load(r)
        releases = project["releases"]
    except (OSError, ValueError, KeyError) as e:
        raise SourceUnavailable(
            f"could not read the release dates of {name!r} from {url}: "
            f"{e}; the dates prove the code is newer than the model, "
            "so the source needs PyPI"
        ) from e
    first = {
        v: min(f["upload_time_iso_8601"] for f in files) for v, files in releases.items() if files
    }
    if version not in first:
        raise SourceUnavailable(f"PyPI lists no files for {name}=={version} ({url})")
    info = project.get("info") or {}
    short = [info.get("license_expression"), info.get("license")]  # newest release's
    return {
        "first_release": min(first.values())[:10],
        "version_release": first[version][:10],
        "license": next((x.strip() for x in short if x and len(x.strip()) <= 40), None),
    }


def post_release_python(packages=POST_RELEASE_PYTHON) -> list[Document]:
    """One document per module of :data:`POST_RELEASE_PYTHON` (their wheels from PyPI);
    each document's ``source`` carries the package, version and both PyPI dates, its
    licence the wheel's METADATA (else PyPI's record of the project)."""
    docs = []
    for spec, (root, version) in zip(packages, pypi_packages(packages, binary=True)):
        dates = pypi_dates(*spec.split("=="))
        meta = next(root.glob("*.dist-info/METADATA")).read_text(errors="replace")
        licence = next(
            (
                m.group(1).strip()
                for pattern in (
                    r"^License-Expression: (.+)$",
                    r"^Classifier: License :: OSI Approved :: (.+)$",
                    r"^License: (.{1,40})$",
                )
                if (m := re.search(pattern, meta, re.M))
            ),
            dates["license"],
        )
        source = (
            f"{version} (first release {dates['first_release']}, this version "
            f"{dates['version_release']})"
        )
        docs += _code_files(
            root,
            "*.py",
            {"__pycache__"},
            source,
            licence or "see the wheel's licence files",
            spec.split("==")[0],
        )
    return docs


SOURCES = {
    "github": (python_stdlib, go_stdlib, rust_stdlib),
    "arxiv": (r_vignettes,),
    "books": (austen_novels, moby_dick, kjv_bible, devils_dictionary, opticks),
    "general": (wikipedia_sample, lee_news),
}
"""Domain -> functions returning its documents."""

SHIFTED_PINS = {
    "books": {"forget": ("Pride and Prejudice",), "approximate": ("Sense and Sensibility",)}
}
"""The ``shifted`` design's units where they are chosen, not drawn: for books, forget is
one Austen novel and approximate another. Other domains draw whole units at random."""

MATCHED_POOL = {"books": ("Emma", "Mansfield Park", "Northanger Abbey", "Persuasion")}
"""Where a domain's ``matched`` forget, approximate and retain are drawn from first: for
books, the other Austen novels (retain then fills up from every other book). Domains not
listed draw from all their documents outside the shifted design's units."""
