"""llmunlearn: machine unlearning of pre-trained LLMs (Yao et al., ACL 2024), reproduced.

The facade chapters import from. Where things live:

- profiles and sizes: :mod:`llmunlearn.config`
- real text from the registries: :mod:`llmunlearn.sources`
- documents, splits, chunking: :mod:`llmunlearn.data`
- tokenizer and models: :mod:`llmunlearn.models`
- the numeric core (NLL): :mod:`llmunlearn.core`
- the training loop (accelerate): :mod:`llmunlearn.train`
- pre-training the original model: :mod:`llmunlearn.pretraining`
- unlearning methods, one file each: :mod:`llmunlearn.methods`
- the unlearning runner and its selection rule: :mod:`llmunlearn.unlearning`
- metrics: :mod:`llmunlearn.metrics`, :mod:`llmunlearn.mia`
- evaluating a model, a run or a domain (every metric, cached): :mod:`llmunlearn.evaluation`
- approximate against exact retraining: :mod:`llmunlearn.groundtruth`
- the hyper-parameter grid, robustness and tuning guidelines: :mod:`llmunlearn.grid`
- relearning attacks against the unlearned and the exact retrained models:
  :mod:`llmunlearn.relearn`
- the paper's setting on a real pre-trained LLM (SmolLM2): :mod:`llmunlearn.realllm`
- the paper's claims with verdicts: :mod:`llmunlearn.claims`
- downstream tasks (lm-evaluation-harness): :mod:`llmunlearn.harness`
- results tables and figures: :mod:`llmunlearn.results`, :mod:`llmunlearn.plotting`
- building the book: :mod:`llmunlearn.book`
"""

from importlib import import_module

from .config import DOMAINS, PROFILES, SPLITS, Profile, get_profile

# The facade loads heavy modules (torch, matplotlib) on first use, so that the command
# line and ``import llmunlearn`` stay fast: name -> module that defines it.
_LAZY = {
    "METHODS": "methods",
    "get_method": "methods",
    "load_splits": "data",
    "build_corpus": "data",
    "chunk_documents": "data",
    "pretrain": "pretraining",
    "load_original": "pretraining",
    "unlearn": "unlearning",
    "select_step": "unlearning",
    "unlearn_all": "unlearning",
    "evaluate_reference": "evaluation",
    "unlearning_table": "results",
    "evaluate_folder": "evaluation",
    "evaluate_domain": "unlearning",
    "evaluation_frame": "results",
    "mia_table": "results",
    "plot_mia_auc": "plotting",
    "plot_roc": "plotting",
    "plot_k_sensitivity": "plotting",
    "plot_cost": "plotting",
    "cost_frame": "results",
    "cost_ratios": "results",
    "plot_method_trajectories": "plotting",
    "trajectory_frame": "results",
    "before_after": "results",
    "split_table": "results",
    "pretrain_table": "results",
    "corpus_table": "results",
    "licence_table": "results",
    "document_table": "data",
    "pretraining_tokenizer": "pretraining",
    "plot_document_lengths": "plotting",
    "plot_loss_curves": "plotting",
    "plot_zoo_perplexity": "plotting",
    "pretrain_zoo": "pretraining",
    "full_zoo": "pretraining",
    "zoo_table": "results",
    "memorisation_gaps": "results",
    "cost_table": "results",
    "plot_trajectory": "plotting",
    "Run": "runs",
    "home": "runs",
    "provenance": "runs",
    "glue": "book",
    "offer_csv": "book",
    "quantised": "quantisation",
    "quantisation_attack": "quantisation",
    "build_status": "book",
    "domain_models": "unlearning",
    "plot_harness_agreement": "plotting",
    "lm_eval_run": "harness",
    "lm_eval_domain": "harness",
    "lm_eval_frame": "results",
    "retraining_check": "groundtruth",
    "ground_truth_table": "groundtruth",
    "token_coverage": "groundtruth",
    "blind_baseline_table": "groundtruth",
    "blind_baseline": "mia",
    "tpr_at_fpr": "mia",
    "plot_ground_truth": "plotting",
    "domain_splits": "data",
    "split_groups": "results",
    "DESIGNS": "config",
    "run_grid": "grid",
    "grid_frame": "grid",
    "robustness": "grid",
    "ranking": "grid",
    "best_lr": "grid",
    "most_robust": "grid",
    "hardest_domains": "grid",
    "guidelines": "grid",
    "plot_grid": "plotting",
    "plot_robustness": "plotting",
    "claims_table": "claims",
    "verdict_counts": "claims",
    "utility_costs": "grid",
    "robustness_curves": "grid",
    "per_replicate": "grid",
    "plot_robustness_curves": "plotting",
    "pilot": "pretraining",
    "pilot_choice": "pretraining",
    "replicate_zoos": "pretraining",
    "memorisation_gap": "pretraining",
    "relearn_model": "relearn",
    "relearn_domain": "relearn",
    "relearn_split": "relearn",
    "steps_to_recover": "relearn",
    "hidden_knowledge": "relearn",
    "plot_relearning": "plotting",
    "plot_quantisation": "plotting",
    "smollm2": "models",
    "smollm2_gguf": "models",
    "real_llm_dataset": "realllm",
    "real_llm_study": "realllm",
    "logit_check": "realllm",
    "METRICS": "metrics",
    "metric": "metrics",
    "register_metric": "metrics",
    "metric_guide": "results",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'llmunlearn' has no attribute {name!r}")


__all__ = ["DOMAINS", "PROFILES", "SPLITS", "Profile", "get_profile", *_LAZY]
__version__ = "0.1.0"
