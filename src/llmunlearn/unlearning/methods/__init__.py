"""Unlearning methods, one file each, registered under the name the book uses.

A method is a loss to *minimise* over one step's micro-batches,
``loss(model, batches, ref, hp)``: ``batches["forget"]`` is always there,
``batches["retain"]`` when the method declares a retain set (``"in"`` = the domain's
retain split, ``"general"`` = general/retain), ``ref`` is the frozen original model when
the method needs it, and ``hp`` holds its hyper-parameters (defaults declared at
registration, overridable per run). In the unified view of the paper each loss is a
forget term plus ``hp["lambda"]`` times a retain term.

Two optional hooks: ``prepare(forget, model, tokenizer, seed)`` returns the forget chunks
with a ``target`` column computed once before training (random or adversarial labels), and
``evaluate_as(model, original, hp)`` returns the model to evaluate (task vectors evaluate
the negated model, not the fine-tuned one). Adding a method is adding a file here.
"""

from __future__ import annotations

import inspect
import math
import pkgutil
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from ...config import check_choice
from ...stages import code_digest


@dataclass(frozen=True)
class Method:
    name: str
    loss: Callable  # (model, batches, ref, hp) -> scalar tensor to minimise
    retain: str | None  # None, "in" (domain/retain) or "general" (general/retain)
    needs_reference: bool  # whether ``ref`` (the frozen original model) is used
    summary: str  # one line for tables and --help
    defaults: dict = field(default_factory=dict)  # hyper-parameters and their defaults
    prepare: Callable | None = None
    evaluate_as: Callable | None = None
    paper: bool = False  # one of the paper's seven methods
    labels_from_model: bool = False  # ``prepare`` runs the original model (counted in FLOPs)


METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    retain: str | None = None,
    needs_reference: bool = False,
    defaults: dict | None = None,
    prepare: Callable | None = None,
    evaluate_as: Callable | None = None,
    paper: bool = False,
    labels_from_model: bool = False,
):
    """Decorator: register ``loss`` as method ``name`` (its docstring's first line is the
    summary)."""

    def wrap(loss):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        summary = (loss.__doc__ or name).strip().splitlines()[0]
        METHODS[name] = Method(
            name,
            loss,
            retain,
            needs_reference,
            summary,
            dict(defaults or {}),
            prepare,
            evaluate_as,
            paper,
            labels_from_model,
        )
        return loss

    return wrap


def method_digest(method: Method) -> str:
    """A digest of the code of the files that define ``method`` (its loss, and its
    ``prepare`` and ``evaluate_as`` hooks; :func:`~llmunlearn.stages.code_digest`, so prose
    does not count): part of every unlearning run's key, so that an edited method file (in
    JupyterLab, say) gives new runs, and only that file's methods' runs change."""

    hooks = (method.loss, method.prepare, method.evaluate_as)
    files = {inspect.getsourcefile(f) for f in hooks if f}
    return code_digest(files)


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name raises listing the valid ones."""
    return METHODS[check_choice("method", name, METHODS)]


HPARAM_RANGES = {
    "lambda": (0.0, True),
    "alpha": (0.0, True),
    "steer": (0.0, True),
    "beta": (0.0, False),
    "seed": (0, True),
}
"""Allowed values of the hyper-parameters by name: ``(bound, bound allowed)``, a finite
number above (or at) the bound. ``layer`` is any integer (Python indexing)."""


def resolve_hparams(method: Method, overrides: dict | None) -> dict:
    """The method's defaults with ``overrides`` applied; an unknown name or a value out of
    :data:`HPARAM_RANGES` is a ``ValueError`` naming it."""

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(method.defaults))
    if unknown:
        raise ValueError(
            f"method {method.name!r} has no hyper-parameter(s) {unknown}; "
            f"it has {sorted(method.defaults) or 'none'}"
        )
    for name, value in overrides.items():
        kind = type(method.defaults[name])
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind is int and not isinstance(value, int))
        ):
            raise ValueError(
                f"{method.name} hyper-parameter {name} must be "
                f"{'an integer' if kind is int else 'a number'}, got {value!r}"
            )
        if name in HPARAM_RANGES:
            bound, closed = HPARAM_RANGES[name]
            if not math.isfinite(value) or value < bound or (value == bound and not closed):
                raise ValueError(
                    f"{method.name} hyper-parameter {name} must be a finite "
                    f"number {'>=' if closed else '>'} {bound:g}, got {value!r}"
                )
        overrides[name] = kind(value)  # 2 and 2.0 are one run, not two
    return {**method.defaults, **overrides}


def _import_all() -> None:
    """Import every module of this package, which registers its methods: a new file is a
    new method. The paper's seven come first, in its order, then the survey's, then any
    other file by name."""

    order = ("ga", "random_label", "adversarial", "ga_gd", "ga_kl", "npo", "rmu", "task_vector")
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    for name in sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)):
        import_module(f"{__name__}.{name}")


_import_all()
