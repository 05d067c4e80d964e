"""llmunlearn: machine unlearning of pre-trained LLMs (Yao et al., ACL 2024), reproduced.

The facade chapters import from. Where things live:

- profiles and sizes: :mod:`llmunlearn.config`
- documents, splits, chunking: :mod:`llmunlearn.data`
- tokenizer and models: :mod:`llmunlearn.models`
- the numeric core (NLL): :mod:`llmunlearn.core`
- the training loop (accelerate): :mod:`llmunlearn.train`
- pre-training the original model: :mod:`llmunlearn.pretrain`
- unlearning methods, one file each: :mod:`llmunlearn.methods`
- the unlearning runner: :mod:`llmunlearn.unlearn`
- metrics: :mod:`llmunlearn.metrics`
- results tables and figures: :mod:`llmunlearn.results`, :mod:`llmunlearn.plotting`
- building the book: :mod:`llmunlearn.book`
"""

from .config import DOMAINS, PROFILES, SPLITS, Profile, get_profile
from .methods import METHODS, get_method
from .pretrain import load_original, pretrain
from .data import load_splits
from .plotting import plot_trajectory
from .results import before_after, pretrain_table, split_table, trajectory_frame
from .runs import Run, home
from .unlearn import select_step, unlearn

__all__ = [
    "DOMAINS", "PROFILES", "SPLITS", "Profile", "get_profile", "METHODS", "get_method",
    "load_original", "pretrain", "load_splits", "plot_trajectory", "before_after",
    "pretrain_table", "split_table", "trajectory_frame", "Run", "home", "select_step", "unlearn",
]
__version__ = "0.1.0"
