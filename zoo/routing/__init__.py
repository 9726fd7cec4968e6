"""Routed runtime: routing over a library of LoRA experts, injected into a model; routers are plug-ins.

Each router is one folder (``zoo/routing/<name>/``) that registers a :class:`Router` on import; the
runtime (``layer``, ``model``, ``dispatch``) works through the contract in ``router.py`` and names none.
"""

import importlib
import pkgutil

from zoo.routing.arrow import ArrowConfig, arrow_routing_vectors
from zoo.routing.dispatch import StackedLora
from zoo.routing.layer import RoutedLinear, RoutingState
from zoo.routing.model import RoutingHandle, route_model
from zoo.routing.phatgoose import GateTrainingConfig, GateTrainingResult, PhatgooseConfig, train_phatgoose_gates
from zoo.routing.recorder import RoutingRecord, RoutingRecorder
from zoo.routing.registry import (
    ROUTERS,
    config_settings,
    default_settings,
    get_router,
    register_router,
    router_config,
    split_settings,
)
from zoo.routing.router import ExampleDecision, FitData, Fitted, Router
from zoo.routing.vectors import ModuleRouting


def _register_bundled_routers() -> None:
    """Import every router folder, so a new router needs no edit here (each registers itself)."""
    for found in pkgutil.iter_modules(__path__):
        if found.ispkg:
            importlib.import_module(f"{__name__}.{found.name}")


_register_bundled_routers()

__all__ = [
    "ROUTERS",
    "ArrowConfig",
    "ExampleDecision",
    "FitData",
    "Fitted",
    "GateTrainingConfig",
    "GateTrainingResult",
    "ModuleRouting",
    "PhatgooseConfig",
    "RoutedLinear",
    "Router",
    "RoutingHandle",
    "RoutingRecord",
    "RoutingRecorder",
    "RoutingState",
    "StackedLora",
    "arrow_routing_vectors",
    "config_settings",
    "default_settings",
    "get_router",
    "register_router",
    "route_model",
    "router_config",
    "split_settings",
    "train_phatgoose_gates",
]
