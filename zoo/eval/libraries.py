"""Routed-library candidates: an Arrow or PHATGOOSE library built from pool experts for one run.

PHATGOOSE settings mix the router's (``top_k``) with gate training's (``steps``, ``lr``,
``examples_per_expert``, ``micro_batch``, ``seed``); members without known data fall back to Arrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from zoo.eval.candidates import CandidateSpec
from zoo.eval.experts import ExpertPool

if TYPE_CHECKING:
    from zoo.library import Library


def build_candidate_library(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Library:
    """The :class:`zoo.library.Library` the spec describes (gates trained on ``model`` for PHATGOOSE)."""
    from zoo.candidate_artifacts import split_phatgoose_settings, train_gates
    from zoo.library import MemberSource, build_library

    members = [MemberSource(pool[m].path, name=m, labels=pool[m].labels) for m in spec.members]
    base_name = getattr(model, "name_or_path", None) or "base"
    router_settings, training = split_phatgoose_settings(spec.settings)
    if spec.kind == "arrow":
        return build_library(members, base_model=base_name, router="arrow", settings=router_settings)
    examples = {i: pool.train_examples(m) for i, m in enumerate(spec.members)}
    gates = train_gates(model, tokenizer, [pool.adapter(m) for m in spec.members], examples, training)
    return build_library(members, base_model=base_name, router="phatgoose", settings=router_settings, gates=gates)
