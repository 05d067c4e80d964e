"""One module per chapter's question: :mod:`.retraining` (approximate against exact
retraining), :mod:`.robustness` (the hyper-parameter grid and its scores),
:mod:`.utility` (lm-evaluation-harness), :mod:`.efficiency` (cost ratios and the
benchmarks), :mod:`.relearning`, :mod:`.quantisation`, :mod:`.real_llm` (SmolLM2 with its
exact twin) and :mod:`.claims` (the paper's claims with verdicts).
"""
