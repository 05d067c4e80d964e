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

from dataclasses import dataclass, field
from typing import Callable

from ..config import check_choice


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


def register(name: str, *, retain: str | None = None, needs_reference: bool = False,
             defaults: dict | None = None, prepare: Callable | None = None,
             evaluate_as: Callable | None = None, paper: bool = False,
             labels_from_model: bool = False):
    """Decorator: register ``loss`` as method ``name`` (its docstring's first line is the
    summary)."""
    def wrap(loss):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        summary = (loss.__doc__ or name).strip().splitlines()[0]
        METHODS[name] = Method(name, loss, retain, needs_reference, summary,
                               dict(defaults or {}), prepare, evaluate_as, paper,
                               labels_from_model)
        return loss
    return wrap


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name raises listing the valid ones."""
    return METHODS[check_choice("method", name, METHODS)]


def resolve_hparams(method: Method, overrides: dict | None) -> dict:
    """The method's defaults with ``overrides`` applied; unknown names are an error."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(method.defaults))
    if unknown:
        raise ValueError(f"method {method.name!r} has no hyper-parameter(s) {unknown}; "
                         f"it has {sorted(method.defaults) or 'none'}")
    return {**method.defaults, **overrides}


# Registration happens on import; the paper's seven first, in its order.
from . import ga, random_label, adversarial, ga_gd, ga_kl  # noqa: E402,F401
from . import npo, rmu, task_vector  # noqa: E402,F401
