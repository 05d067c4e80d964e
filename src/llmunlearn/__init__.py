"""llmunlearn: machine unlearning of pre-trained LLMs (Yao et al., ACL 2024), reproduced.

The facade chapters import from (``import llmunlearn as ul``). The package is a house of
layers, each folder standing above everything it imports (``tests/test_layers.py``
holds it so), bottom to top:

- foundation: profiles and sizes :mod:`~llmunlearn.config`, cached runs and the home
  folder :mod:`~llmunlearn.runs`, progress bars :mod:`~llmunlearn.progress`, the
  numeric core (token NLL) :mod:`~llmunlearn.core`;
- ``data/`` (the data chapter): real text from the registries
  :mod:`~llmunlearn.data.sources`; documents, splits, chunking, the manifest
  :mod:`~llmunlearn.data.corpus`; tokenizers and models (SmolLM2, GGUF)
  :mod:`~llmunlearn.models`;
- ``measurement/``: perplexity and the metric registry
  :mod:`~llmunlearn.measurement.metrics`, membership inference and its intervals
  :mod:`~llmunlearn.measurement.mia`;
- ``training/`` (the pre-training chapter): the training loop on accelerate
  :mod:`~llmunlearn.training.loop`, SophiaG :mod:`~llmunlearn.training.optim`, the
  local or Ray executor :mod:`~llmunlearn.training.executor`, the zoo of original and
  exact retrained models :mod:`~llmunlearn.training.pretraining`;
- the evaluation of one model (every metric, cached): :mod:`~llmunlearn.evaluation`;
- ``unlearning/`` (the unlearning chapters): the methods, one file each,
  :mod:`~llmunlearn.unlearning.methods`, and the runner with its selection rule
  :mod:`~llmunlearn.unlearning.runner`;
- ``studies/``, one module per chapter's question: retraining (approximate against
  exact), robustness (the grid), utility (lm-evaluation-harness), efficiency (cost and
  benchmarks), relearning, quantisation, real_llm, claims;
- ``report/``: tables :mod:`~llmunlearn.report.results`, figures
  :mod:`~llmunlearn.report.plotting`, the book build and its glue
  :mod:`~llmunlearn.report.book`;
- the command line :mod:`~llmunlearn.cli` and this facade.
"""

from importlib import import_module

from .config import DOMAINS, PROFILES, SPLITS, Profile, get_profile

# The facade loads heavy modules (torch, matplotlib) on first use, so that the command
# line and ``import llmunlearn`` stay fast: name -> module that defines it.
_LAZY = {
    "METHODS": "unlearning.methods",
    "get_method": "unlearning.methods",
    "load_splits": "data.corpus",
    "build_corpus": "data.corpus",
    "chunk_documents": "data.corpus",
    "pretrain": "training.pretraining",
    "pretraining_inputs": "training.pretraining",
    "pretraining_run": "training.pretraining",
    "load_original": "training.pretraining",
    "unlearn": "unlearning.runner",
    "unlearning_inputs": "unlearning.runner",
    "unlearning_run": "unlearning.runner",
    "select_step": "unlearning.runner",
    "unlearn_all": "unlearning.runner",
    "evaluate_reference": "evaluation",
    "unlearning_table": "report.results",
    "evaluate_folder": "evaluation",
    "evaluate_domain": "unlearning.runner",
    "evaluation_frame": "report.results",
    "mia_table": "report.results",
    "plot_mia_auc": "report.plotting",
    "plot_roc": "report.plotting",
    "plot_k_sensitivity": "report.plotting",
    "plot_cost": "report.plotting",
    "cost_frame": "studies.efficiency",
    "cost_ratios": "studies.efficiency",
    "plot_method_trajectories": "report.plotting",
    "trajectory_frame": "report.results",
    "before_after": "report.results",
    "split_table": "report.results",
    "pretrain_table": "report.results",
    "corpus_table": "report.results",
    "licence_table": "report.results",
    "document_table": "data.corpus",
    "document_bounds": "data.corpus",
    "pretraining_tokenizer": "training.pretraining",
    "plot_document_lengths": "report.plotting",
    "plot_loss_curves": "report.plotting",
    "plot_zoo_perplexity": "report.plotting",
    "pretrain_zoo": "training.pretraining",
    "full_zoo": "training.pretraining",
    "zoo_table": "report.results",
    "memorisation_gaps": "report.results",
    "cost_table": "report.results",
    "plot_trajectory": "report.plotting",
    "Run": "runs",
    "home": "runs",
    "provenance": "runs",
    "glue": "report.book",
    "offer_csv": "report.book",
    "claims_html": "report.book",
    "plot_claims": "report.plotting",
    "controls": "studies.robustness",
    "sibling_frame": "studies.robustness",
    "measure_noise": "studies.claims",
    "aa_table": "studies.claims",
    "MAX_FALSE_DECISION": "studies.decisions",
    "FORGET_GAP_FRACTION": "studies.decisions",
    "AUC_MARGIN": "studies.decisions",
    "CHANGED_AFTER_RESULTS": "studies.decisions",
    "threshold_table": "studies.decisions",
    "quantised": "studies.quantisation",
    "quantisation_attack": "studies.quantisation",
    "build_status": "report.book",
    "domain_models": "unlearning.runner",
    "plot_harness_agreement": "report.plotting",
    "lm_eval_run": "studies.utility",
    "lm_eval_domain": "studies.utility",
    "lm_eval_frame": "report.results",
    "retraining_check": "studies.retraining",
    "ground_truth_table": "studies.retraining",
    "token_coverage": "studies.retraining",
    "blind_baseline_table": "studies.retraining",
    "blind_baseline": "measurement.mia",
    "tpr_at_fpr": "measurement.mia",
    "plot_ground_truth": "report.plotting",
    "domain_splits": "data.corpus",
    "split_groups": "report.results",
    "DESIGNS": "config",
    "run_grid": "studies.robustness",
    "grid_frame": "studies.robustness",
    "robustness": "studies.robustness",
    "ranking": "studies.robustness",
    "best_lr": "studies.robustness",
    "most_robust": "studies.robustness",
    "hardest_domains": "studies.robustness",
    "guidelines": "studies.robustness",
    "plot_grid": "report.plotting",
    "plot_robustness": "report.plotting",
    "claims_table": "studies.claims",
    "verdict_counts": "studies.claims",
    "utility_costs": "studies.robustness",
    "robustness_curves": "studies.robustness",
    "per_replicate": "studies.robustness",
    "plot_robustness_curves": "report.plotting",
    "order_contrast": "studies.pretraining",
    "dose_pilot": "studies.pretraining",
    "dose_choice": "studies.pretraining",
    "siblings": "training.pretraining",
    "sibling_seed": "training.pretraining",
    "pipeline_table": "stages",
    "plot_doses": "report.plotting",
    "replicate_zoos": "training.pretraining",
    "memorisation_gap": "training.pretraining",
    "relearn_model": "studies.relearning",
    "relearn_domain": "studies.relearning",
    "relearn_split": "studies.relearning",
    "steps_to_recover": "studies.relearning",
    "hidden_knowledge": "studies.relearning",
    "plot_relearning": "report.plotting",
    "plot_quantisation": "report.plotting",
    "smollm2": "models",
    "runtime": "models",
    "unlearn_own": "studies.own",
    "own_study": "studies.own",
    "own_table": "studies.own",
    "evaluate_own": "studies.own",
    "read_documents": "data.own",
    "device_check": "studies.efficiency",
    "smollm2_gguf": "models",
    "real_llm_dataset": "studies.real_llm",
    "real_llm_study": "studies.real_llm",
    "real_llm_folders": "studies.real_llm",
    "logit_check": "studies.real_llm",
    "METRICS": "measurement.metrics",
    "metric": "measurement.metrics",
    "register_metric": "measurement.metrics",
    "metric_guide": "report.results",
    "training_flops": "training.loop",
    "TOLERANCE": "studies.decisions",
    "MIN_PACKAGES": "studies.real_llm",
    "MODEL_RELEASED": "studies.real_llm",
    "zoo_agreement": "studies.real_llm",
    "source_documents": "data.corpus",
    "post_release_python": "data.sources",
    "FORGET_BAND": "studies.decisions",
    "MARGIN": "studies.relearning",
    "HIDDEN": "studies.relearning",
    "MATERIAL": "studies.claims",
    "quantisation_decisions": "studies.claims",
    "EQUIVALENCE_BAND": "studies.retraining",
    "CURVE": "studies.robustness",
    "MAX_TOLERANCE": "studies.robustness",
    "grid_cells": "studies.robustness",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'llmunlearn' has no attribute {name!r}")


__all__ = ["DOMAINS", "PROFILES", "SPLITS", "Profile", "get_profile", *_LAZY]
__version__ = "0.1.0"
