"""JupyterLab in a real browser (headless Chromium through Playwright): a chapter opened
from a running lab shows its MyST admonition rendered (not ``:::{admonition}`` as text),
and a cell that runs the library's progress bar shows a widget, not text lines.

Not part of ``make test`` (it needs Chromium); ``.ci/run`` runs it after the page check
(``make check-lab``). Screenshots go to ``_build/lab-screenshots/`` (build artefacts,
never committed).
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmunlearn.runs import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))
from chromium import browser  # noqa: E402,F401  (the fixture)
from test_lab import TOKEN, free_port, get, lab_command  # noqa: E402

SHOTS = PROJECT_ROOT / "_build" / "lab-screenshots"
DEMO = (
    "from llmunlearn.progress import progress_bar\nimport time\n"
    "for _ in progress_bar(range(40), desc='a run'):\n    time.sleep(0.1)"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` as ``make lab`` starts it, on a copy of the book's chapters plus a
    one-cell notebook that runs a progress bar."""
    root = tmp_path_factory.mktemp("lab-root")
    for p in (PROJECT_ROOT / "book").glob("*.ipynb"):
        shutil.copy(p, root / p.name)
    demo = json.loads((root / "quickstart.ipynb").read_text())
    demo["cells"] = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "demo",
            "metadata": {},
            "outputs": [],
            "source": DEMO,
        }
    ]
    (root / "progress-demo.ipynb").write_text(json.dumps(demo))
    port = free_port()
    proc = subprocess.Popen(
        lab_command(port, root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if get(f"{base}/api/status?token={TOKEN}")[0] == 200:
                break
        except OSError:
            time.sleep(0.5)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def open_notebook(browser, lab, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # a workspace of its own, reset: no tab of an earlier test in front
    workspace = name.replace(".", "-")
    page.goto(
        f"{lab}/lab/workspaces/{workspace}/tree/{name}?token={TOKEN}&reset",
        wait_until="domcontentloaded",
    )
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    return page


def wait_for_idle_kernel(lab, name, timeout=300):
    """Wait until the server lists a session for notebook ``name`` whose kernel is idle."""
    state = None
    for _ in range(timeout):
        sessions = get(f"{lab}/api/sessions?token={TOKEN}")[1]
        state = next(
            (s["kernel"]["execution_state"] for s in sessions if s["path"].endswith(name)), None
        )
        if state == "idle":
            return
        time.sleep(1)
    raise AssertionError(f"the kernel of {name} is not idle after {timeout} s ({state})")


def test_a_chapter_shows_its_admonition_rendered(browser, lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_notebook(browser, lab, "quickstart.ipynb")
    page.wait_for_selector(".jp-MarkdownCell aside, .jp-MarkdownCell .admonition", timeout=60_000)
    first = page.locator(".jp-MarkdownCell >> visible=true").first.inner_text()
    page.screenshot(path=str(SHOTS / "quickstart.png"))
    assert "Claim under test" in first
    assert ":::" not in first and "{admonition}" not in first, first[:300]
    page.close()


def test_a_running_cell_shows_a_widget_progress_bar(browser, lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_notebook(browser, lab, "progress-demo.ipynb")
    # a cold kernel (a fresh environment compiles its imports) can take long to start: run
    # the cell only once the server reports the notebook's kernel idle
    wait_for_idle_kernel(lab, "progress-demo.ipynb")
    page.locator(".jp-InputArea-editor >> visible=true").first.click()
    page.keyboard.press("Shift+Enter")
    bar = page.wait_for_selector(
        ".jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output progress", timeout=180_000
    )
    page.screenshot(path=str(SHOTS / "progress-widget.png"))
    assert bar.is_visible()
    text = page.inner_text(".jp-OutputArea")
    assert "IProgress not found" not in text
    page.close()
