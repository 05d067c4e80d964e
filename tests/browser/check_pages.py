"""The built book in a real browser (headless Chromium through Playwright), offline.

Not part of ``make test``: it needs a built book, so ``.ci/run`` runs it after the smoke
build (``make check-pages``); ``BOOK_HTML`` names another build folder. Every page loads
without a console error and without reaching for the network, every figure is an image
that decodes, equations are typeset by the MathJax served from the build (no raw
``\\(...\\)`` left), and every internal link resolves. A screenshot of each page is kept
under ``<build>/../screenshots/`` (a build artefact, never committed).
"""

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from llmunlearn.runs import PROJECT_ROOT

HTML = Path(os.environ.get("BOOK_HTML", PROJECT_ROOT / "_build" / "smoke" / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        raise FileNotFoundError(f"no built book at {HTML}: run `make book PROFILE=smoke` first "
                                "(or set BOOK_HTML)")
    skip = {"genindex.html", "search.html"}
    return sorted(p for p in HTML.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts)


@pytest.fixture(scope="module")
def site():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.mark.parametrize("page_path", pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_page_renders_offline(page_path, site, browser):
    url = urljoin(site, page_path.relative_to(HTML).as_posix())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, off_host = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

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
    shots = HTML.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / (page_path.relative_to(HTML).as_posix()
                                      .replace("/", "_") + ".png")), full_page=True)
    page.close()
    assert not off_host, f"{url}: requests off this host: {off_host[:5]}"
    assert not errors, f"{url}: console errors: {errors[:5]}"
