"""Unlearning methods, one file each, registered under the name the book uses.

A method is a loss to *minimise* over a step's micro-batches: ``loss(model, batches, ref)``
where ``batches["forget"]`` is always present, ``batches["retain"]`` is present when the
method declares a retain set (``"in"`` = the domain's retain split, ``"general"`` =
general/retain), and ``ref`` is the frozen original model when the method needs it.
Adding a method is adding a file here that calls :func:`register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import check_choice


@dataclass(frozen=True)
class Method:
    name: str
    loss: Callable  # (model, batches, ref) -> scalar tensor to minimise
    retain: str | None  # None, "in" (domain/retain) or "general" (general/retain)
    needs_reference: bool  # whether ``ref`` (the frozen original model) is used
    summary: str  # one line for tables and --help


METHODS: dict[str, Method] = {}


def register(name: str, *, retain: str | None = None, needs_reference: bool = False):
    """Decorator: register ``loss`` as method ``name`` (its docstring's first line is the
    summary)."""
    def wrap(loss):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        summary = (loss.__doc__ or name).strip().splitlines()[0]
        METHODS[name] = Method(name, loss, retain, needs_reference, summary)
        return loss
    return wrap


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name raises listing the valid ones."""
    return METHODS[check_choice("method", name, METHODS)]


from . import ga  # noqa: E402,F401  (registration happens on import)
