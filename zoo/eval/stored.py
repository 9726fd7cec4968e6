"""Candidates built ahead of time and stored as folders: a PEFT adapter, or a routed library.

The recycling pipeline builds each candidate once (merging, gate training) and keeps its folder, so
scoring applies exactly what is logged and registered rather than rebuilding it. ``settings["path"]``
is the folder; ``members`` name the library's experts in order (their labels give routing accuracy).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from torch import nn

from zoo.eval.experts import ExpertPool
from zoo.eval.fold import folded_adapter

if TYPE_CHECKING:
    from zoo.eval.candidates import CandidateSpec


@contextmanager
def stored_adapter(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Iterator[None]:
    """Fold the PEFT adapter folder at ``settings["path"]`` into the base."""
    from zoo.adapters import load_adapter

    with folded_adapter(model, load_adapter(spec.settings["path"])):
        yield None


@contextmanager
def stored_library(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Iterator[Any]:
    """Route the base over the library folder at ``settings["path"]`` (experts copied in)."""
    from zoo.library import load_library

    library = load_library(spec.settings["path"])
    names = [m.name for m in library.manifest.members]
    if list(spec.members) != names:
        raise ValueError(f"the spec's members {list(spec.members)} are not the library's {names}")
    handle = library.route(model)
    try:
        yield handle
    finally:
        handle.remove()
