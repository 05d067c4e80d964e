"""The built book in a real browser (headless Chromium through Playwright), offline.

Not part of ``make test``: it needs a built book, so ``.ci/run`` runs it after the smoke
build (``make check-pages``); ``BOOK_HTML`` names another build folder. Every page loads
without a console error and without reaching for the network, every figure is an image
that decodes, equations are typeset by the MathJax served from the build (no raw
``\\(...\\)`` left), and every internal link resolves. A screenshot of each page is kept
under ``<build>/../screenshots/`` in the theme's light and dark modes (a build artefact,
never committed), and every figure has an opaque background, legible in both. Each CSV
download (a chapter's tables) loads and is a table.
"""

import csv as csv_module
import functools
import http.server
import io
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from llmunlearn.runs import PROJECT_ROOT

sys.path.insert(0, str(Path(__file__).parent))
from chromium import browser  # noqa: E402,F401  (the fixture)

HTML = Path(os.environ.get("BOOK_HTML", PROJECT_ROOT / "_build" / "smoke" / "_build" / "html"))
KNOWN_THEME_ERRORS = (
    # Jupyter Book 1.x writes sphinx-thebe's inline configuration twice into every page
    # (togglebutton's too): the second `const` declaration fails, the first one stands
    "Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme, on a browser that has never stored a light/dark choice
    "Got invalid theme mode: . Resetting to auto.",
)
"""Console errors of the themes Jupyter Book 1.x ships, not of this book's content: named
here one by one, so that any other error still fails."""


def pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        raise FileNotFoundError(
            f"no built book at {HTML}: run `make book PROFILE=smoke` first (or set BOOK_HTML)"
        )
    skip = {"genindex.html", "search.html"}
    return sorted(
        p
        for p in HTML.rglob("*.html")
        if p.name not in skip
        and "_static" not in p.parts
        and 'http-equiv="Refresh"' not in p.read_text()[:2000]
    )  # redirects


def test_the_front_page_leads_to_the_book():
    redirect = re.search(r'url=([^"]+)"', (HTML / "index.html").read_text())
    target = HTML / redirect.group(1) if redirect else HTML / "index.html"
    assert target.exists(), f"index.html points to {target}, which was not built"


def test_the_numbers_behind_the_tables_are_offered_as_csv():
    """The grid's every cell, the claims table and the evaluation rows are downloads
    beside their pages (the browser test below checks that each one loads)."""
    offered = {
        p.relative_to(HTML).as_posix(): re.findall(r'href="([^"]+\.csv)" download', p.read_text())
        for p in pages()
    }
    for page in ("book/claims.html", "book/robustness.html", "book/privacy.html"):
        assert offered.get(page), f"{page} offers no CSV table"
    assert [p for p, links in offered.items() if "unlearning-" in p and links], (
        "no unlearning chapter offers its grid as CSV"
    )


@pytest.fixture(scope="module")
def site():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.parametrize("page_path", pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_page_renders_offline(page_path, site, browser):
    url = urljoin(site, page_path.relative_to(HTML).as_posix())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, off_host = [], []

    def error(text):
        if not any(known in text for known in KNOWN_THEME_ERRORS):
            errors.append(text)

    page.on("console", lambda m: error(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: error(str(e)))

    def route(r):  # the book must not need the network: anything off this host fails
        if urlparse(r.request.url).hostname not in ("127.0.0.1", "localhost"):
            off_host.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, url
    if page.evaluate("() => !!(window.MathJax && window.MathJax.startup)"):
        page.evaluate("() => window.MathJax.startup.promise")
    text = page.inner_text("article") if page.query_selector("article") else page.inner_text("body")
    math = page.query_selector_all(".math")
    if math:
        assert page.query_selector_all("mjx-container"), f"{url}: equations not typeset"
    assert not re.search(r"\\\(|\\\[", text), f"{url}: raw LaTeX left in the page"
    for img in page.query_selector_all("article img"):
        ok = img.evaluate("i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0")
        assert ok, f"{url}: image {img.get_attribute('src')} does not load"
    for href in {a.get_attribute("href") for a in page.query_selector_all("a[href]")}:
        target = urldefrag(urljoin(url, href or "")).url
        if target.startswith(site):
            assert page.request.get(target).ok, f"{url}: broken internal link {href}"
    for a in page.query_selector_all("a[download]"):  # a table to take home: a real CSV
        got = page.request.get(urljoin(url, a.get_attribute("href")))
        assert got.ok, f"{url}: download {a.get_attribute('href')} does not load"
        header, *rows = got.text().splitlines()
        assert "," in header and rows, f"{url}: {a.get_attribute('href')} is not a CSV table"
    shots = HTML.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    name = page_path.relative_to(HTML).as_posix().replace("/", "_")
    for mode in ("light", "dark"):  # the theme's two modes, as a reader switches them
        page.evaluate(
            "m => { document.documentElement.dataset.theme = m; "
            "document.documentElement.dataset.mode = m; }",
            mode,
        )
        page.screenshot(path=str(shots / f"{name}-{mode}.png"), full_page=True)
        for img in page.query_selector_all("article img"):
            # a figure drawn on a transparent background turns its black axes and text
            # invisible on the dark theme; the book's figures carry their own background
            alpha = img.evaluate(
                "i => { const c = document.createElement('canvas'); c.width = 4; "
                "c.height = 4; const x = c.getContext('2d'); x.drawImage(i, 0, 0, 4, 4, "
                "0, 0, 4, 4); return x.getImageData(1, 1, 1, 1).data[3]; }"
            )
            assert alpha == 255, (
                f"{url}: image {img.get_attribute('src')} has a transparent background, "
                f"illegible in the {mode} theme"
            )
    page.close()
    assert not off_host, f"{url}: requests off this host: {off_host[:5]}"
    assert not errors, f"{url}: console errors: {errors[:5]}"


def test_the_claims_page_reads_at_a_glance(site, browser):
    """The claims page leads with its figure and one folded line per claim, shows no code
    above the fold, and has a Controls section naming the negative control, the positive
    control and the false-decision rate (issue 35). Its first screen is kept as
    ``claims-top.png``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(site, "book/claims.html"), wait_until="load")
    article = page.query_selector("article")
    first_img = page.query_selector("article img")
    first_details = page.query_selector("article .llmunlearn-claims details")
    assert first_img is not None and first_details is not None
    # the figure comes before the claim lines, and every line is folded
    assert first_img.evaluate("(i, d) => !!(i.compareDocumentPosition(d) & 4)", first_details)
    summaries = page.query_selector_all("article .llmunlearn-claims details")
    assert summaries and not any(d.get_attribute("open") is not None for d in summaries)
    csv = re.search(r'href="([^"]*claims\.csv)" download', page.content()).group(1)
    table = list(csv_module.reader(io.StringIO(page.request.get(urljoin(page.url, csv)).text())))
    assert len(summaries) == len(table) - 1  # one line per claim (the CSV has a header)
    text = article.inner_text()
    assert "Controls" in text
    for phrase in ("negative control", "positive control", "false-decision rate"):
        assert phrase in text, phrase
    # no source code is shown (the code cells are folded away or removed)
    visible_code = [
        c
        for c in page.query_selector_all("article .cell_input")
        if c.is_visible() and c.bounding_box() and c.bounding_box()["y"] < 900
    ]
    assert not visible_code, "code above the fold on the claims page"
    shots = HTML.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "claims-top.png"))
