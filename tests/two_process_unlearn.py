"""Run by test_multiprocess.py under `accelerate launch --num_processes 2 --cpu`: the same
unlearning run as the test's single process, printed as JSON by the main process."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import llmunlearn as ul  # noqa: E402
from conftest import fake_sources, tiny_profile  # noqa: E402

fake_sources()
run = ul.unlearn(tiny_profile(), "books", sys.argv[1], steps=4, progress=False)
if (run.path / "DONE").exists():
    print("RESULT " + json.dumps(run.summary["evals"]))
    print("RUN " + str(run.path))
