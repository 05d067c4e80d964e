"""The gpu profile's code path at tiny sizes (issue 36): only the sizes are the tiny
profile's; the shape is the gpu profile's (every method on every replicate seed, both
retrained designs, whole documents up to its passage length, gradient accumulation,
evaluation at fixed steps), so what a GPU user runs has run in the suite."""

import llmunlearn as ul
from llmunlearn.config import DESIGNS, check_profile
from llmunlearn.unlearning.methods import METHODS

SIZES = (
    "forget_chars", "retain_chars", "approximate_chars", "general_retain_chars",
    "general_eval_chars", "min_doc_chars", "max_doc_chars", "general_doc_chars", "vocab_size",
    "chunk_len", "d_model", "n_layer", "pretrain_epochs",
)  # fmt: skip


def gpu_shaped(tiny):
    gpu = ul.get_profile("gpu")
    return check_profile(
        gpu.replace(
            **{f: getattr(tiny, f) for f in SIZES},
            n_head=2,
            passage_chars=None,
            threads=2,
            unlearn_steps=4,
            unlearn_batch=4,
            unlearn_micro_batch=2,  # two micro-batches per step: accumulation
            eval_chunks=8,
            grid_lrs=(1e-3,),
            grid_seeds=(42, 43),
            grid_eval_steps=(2, 4),
        )
    )


def test_the_gpu_profiles_shape_runs_at_tiny_sizes(tiny):
    p = gpu_shaped(tiny)
    assert p.grid_seed_methods is None and p.retrained_designs == DESIGNS
    zoo = ul.full_zoo(p, progress=False)
    grid = ul.grid_frame(p, ["github"], progress=False)
    runs = grid[(grid["method"] != "retrained") & (grid["step"] == 0)]
    # every method on every replicate seed, from that seed's own original
    assert {(m, r) for m, r in zip(runs["method"], runs["replicate"])} == {
        (m, s) for m in METHODS for s in p.grid_seeds
    }
    finished = grid[(grid["step"] == 4) & (grid["status"] == "finished")]
    assert len(finished) >= len(METHODS)  # most runs reach the last step at tiny sizes
    # both designs' exact retrained models exist for the first seed: 8 models
    assert len(zoo) == 2 + len(DESIGNS) * 3, sorted(zoo)
