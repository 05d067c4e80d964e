"""Run by test_interruption.py in a subprocess that it kills with SIGKILL part-way, then
runs again to completion: one stage of the pipeline on the fake sources, sized to take
a few seconds. Prints ``RESULT <json>`` when the stage finished."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import llmunlearn as ul  # noqa: E402
from conftest import fake_sources, tiny_profile  # noqa: E402

fake_sources()
stage = sys.argv[1]
# long enough that a kill lands mid-way: many steps, a checkpoint every few
profile = tiny_profile().replace(pretrain_epochs=40, unlearn_steps=60, eval_every=2)
if stage == "data":
    from llmunlearn.data.corpus import build_corpus

    result = json.loads(Path(build_corpus(profile)).read_text())
elif stage == "pretrain":
    result = ul.pretrain(profile, progress=False).summary["ppl"]
elif stage == "unlearn":
    result = ul.unlearn(profile, "books", "ga_gd_in", progress=False).summary["evals"]
elif stage == "evaluate":
    original = ul.pretrain(profile, progress=False)
    result = ul.evaluate_folder(profile, "books", original.path / "model", zoo={}).summary
elif stage == "notebook":
    from llmunlearn.report.book import execute

    src, dst = Path(sys.argv[2]), Path(sys.argv[3])
    ran = execute(src, dst, {"seconds": float(sys.argv[4])}, key="k1")
    result = {"ran": ran}
else:
    raise SystemExit(f"unknown stage {stage!r}")
print("RESULT " + json.dumps(result, sort_keys=True, default=str))
