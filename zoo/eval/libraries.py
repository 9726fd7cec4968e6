"""Routed-library candidates: an Arrow or PHATGOOSE library built from pool experts for one run.

PHATGOOSE settings mix the router's (``top_k``) with gate training's (``steps``, ``lr``,
``examples_per_expert``, ``micro_batch``, ``seed``); members without known data fall back to Arrow.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.eval.candidates import CandidateSpec
from zoo.eval.experts import ExpertPool

if TYPE_CHECKING:
    from zoo.library import Library
    from zoo.routing import GateTrainingConfig


def build_candidate_library(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Library:
    """The :class:`zoo.library.Library` the spec describes (gates trained on ``model`` for PHATGOOSE)."""
    from zoo.library import MemberSource, build_library
    from zoo.routing import GateTrainingConfig

    members = [MemberSource(pool[m].path, name=m, labels=pool[m].labels) for m in spec.members]
    base_name = getattr(model, "name_or_path", None) or "base"
    training_names = {f.name for f in fields(GateTrainingConfig)}
    router_settings = {k: v for k, v in spec.settings.items() if k not in training_names}
    if spec.kind == "arrow":
        return build_library(members, base_model=base_name, router="arrow", settings=router_settings)
    training = GateTrainingConfig(**{k: v for k, v in spec.settings.items() if k in training_names})
    gates = _train_gates(spec, model, pool, tokenizer, training)
    return build_library(members, base_model=base_name, router="phatgoose", settings=router_settings, gates=gates)


def _train_gates(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any,
                 config: GateTrainingConfig) -> dict[int, dict[str, torch.Tensor]]:
    """Gates of every member whose training data the pool knows, keyed by member index."""
    from zoo.demozoo.training import encode_pair
    from zoo.routing import train_phatgoose_gates

    data = {i: [encode_pair(tokenizer, p, t) for p, t in pool.train_examples(m)] for i, m in enumerate(spec.members)}
    data = {i: examples for i, examples in data.items() if examples}
    if not data:
        return {}
    experts = [pool.adapter(m) for m in spec.members]
    return train_phatgoose_gates(model, experts, data, pad_id=tokenizer.pad_token_id, config=config).gates
