"""JupyterLab as a place to work: the server from the environment lists the chapters and
the project's kernel, the MyST renderer is enabled, and a chapter's first cells run
through the project's kernel with widget progress bars.

Needs the ``lab`` extra (installed by the Makefile's set-up, as ``make lab`` uses it)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llmunlearn.runs import PROJECT_ROOT

BIN = Path(sys.executable).parent
TOKEN = "llmunlearn-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(port: int, root: Path) -> list[str]:
    """``jupyter lab`` as ``make lab`` starts it, on ``port``, without a browser."""
    cmd = [
        str(BIN / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
    ]
    return cmd + (["--allow-root"] if os.geteuid() == 0 else [])


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
        return r.status, (
            json.loads(body) if "json" in r.headers.get("Content-Type", "") else body.decode()
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running lab server on the book folder (a free local port); stopped afterwards."""
    port = free_port()
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen(
        lab_command(port, PROJECT_ROOT / "book"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if get(f"{base}/api/status?token={TOKEN}")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"jupyter lab did not start:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.5)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_lab_lists_the_chapters_and_the_projects_kernel(lab):
    _, contents = get(f"{lab}/api/contents?token={TOKEN}")
    names = {item["name"] for item in contents["content"]}
    chapters = {p.name for p in (PROJECT_ROOT / "book").glob("*.ipynb")}
    assert chapters and chapters <= names
    _, specs = get(f"{lab}/api/kernelspecs?token={TOKEN}")
    spec = specs["kernelspecs"]["llmunlearn"]["spec"]
    assert Path(spec["argv"][0]).parent.resolve() == BIN.resolve()  # the project's python
    status, page = get(f"{lab}/lab?token={TOKEN}")
    assert status == 200 and "JupyterLab" in page
    # every chapter opens with the project's kernel
    for p in (PROJECT_ROOT / "book").glob("*.ipynb"):
        assert json.loads(p.read_text())["metadata"]["kernelspec"]["name"] == "llmunlearn", p


def test_the_myst_renderer_and_widgets_are_enabled_in_the_lab():
    out = subprocess.run(
        [str(BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    lines = (out.stdout + out.stderr).splitlines()
    for ext in ("jupyterlab-myst", "@jupyter-widgets/jupyterlab-manager"):
        line = next((x for x in lines if ext in x), "")
        assert "enabled" in line and "OK" in line, f"{ext} not usable:\n" + "\n".join(lines)
    assert "not compatible" not in out.stdout + out.stderr


def test_a_chapters_first_cells_run_through_the_projects_kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    nb = json.loads((PROJECT_ROOT / "book" / "quickstart.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    cells = [
        "".join(code[0]["source"]),
        'profile = "smoke"',
        "".join(code[1]["source"]),
        "import sys, llmunlearn, tqdm.notebook\n"
        "from llmunlearn.progress import progress_bar\n"
        "widget = isinstance(progress_bar(total=2), tqdm.notebook.tqdm_notebook)\n"
        "print('RESULT', p.name, sys.executable, llmunlearn.__file__, widget)",
    ]
    # as JupyterLab starts it: without the book build's settings (an earlier test that
    # built a chapter in this process left LLMUNLEARN_PROGRESS=console in os.environ)
    env = {k: v for k, v in os.environ.items() if k != "LLMUNLEARN_PROGRESS"}
    km, kc = start_new_kernel(
        kernel_name="llmunlearn",
        cwd=str(tmp_path),
        env={**env, "LLMUNLEARN_HOME": str(tmp_path / "home")},
    )
    try:
        printed = []
        for src in cells:
            reply = kc.execute_interactive(
                src,
                timeout=120,
                output_hook=lambda m: printed.append(
                    m["content"].get("text", "") if m["content"].get("name") == "stdout" else ""
                ),
            )
            assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    result = next(x for x in "".join(printed).splitlines() if x.startswith("RESULT "))
    name, python, package, bar = result.split()[1:]
    assert name == "smoke"
    assert Path(python).parent.resolve() == BIN.resolve()
    assert Path(package).resolve().is_relative_to(PROJECT_ROOT / "src")
    assert bar == "True"  # a widget progress bar in a notebook front end
