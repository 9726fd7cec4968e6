"""Routers by name: what the routed layer needs to score tokens, without knowing which router it holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from zoo.routing.arrow import ArrowConfig, arrow_logits, prepare_arrow_vectors
from zoo.routing.phatgoose import PhatgooseConfig, phatgoose_logits, prepare_phatgoose_vectors


@dataclass(frozen=True)
class RouterSpec:
    """A router: its settings class, how stored vectors are prepared once, and how tokens are scored.

    ``prepare(vectors: (E, d_in), config) -> (E, d_in)`` (once, at load time);
    ``logits(h: (n, d_in), prepared, config, sign_free) -> (n, E)``.
    Every config has ``top_k``: the layer keeps the top-k logits and softmaxes over them.
    """

    name: str
    config_class: type
    prepare: Callable[[torch.Tensor], torch.Tensor]
    logits: Callable[..., torch.Tensor]
    reference: str


ROUTERS: dict[str, RouterSpec] = {
    "arrow": RouterSpec(
        "arrow", ArrowConfig, prepare_arrow_vectors, arrow_logits,
        "Ostapenko et al. 2024, Towards Modular LLMs by Building and Reusing a Library of LoRAs",
    ),
    "phatgoose": RouterSpec(
        "phatgoose", PhatgooseConfig, prepare_phatgoose_vectors, phatgoose_logits,
        "Muqeeth et al. 2024, Learning to Route Among Specialized Experts for Zero-Shot Generalization",
    ),
}


def get_router(name: str) -> RouterSpec:
    """The registered router ``name``; the error lists the known ones."""
    if name not in ROUTERS:
        raise KeyError(f"unknown router {name!r}; known routers: {sorted(ROUTERS)}")
    return ROUTERS[name]


def router_config(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """Build router ``name``'s config from plain settings (a manifest's ``router.settings``)."""
    spec = get_router(name)
    try:
        return spec.config_class(**dict(settings or {}))
    except TypeError as err:
        raise ValueError(f"bad settings for router {name!r}: {err}") from err


def config_settings(config: Any) -> dict[str, Any]:
    """A router config as plain JSON-able settings (the inverse of :func:`router_config`)."""
    return asdict(config)
