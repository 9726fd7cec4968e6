"""Routed runtime: per-token routing over a library of LoRA experts (Arrow, PHATGOOSE), injected into a model."""

from zoo.routing.arrow import ArrowConfig, arrow_routing_vectors
from zoo.routing.dispatch import StackedLora
from zoo.routing.layer import RoutedLinear
from zoo.routing.model import RoutingHandle, route_model
from zoo.routing.phatgoose import PhatgooseConfig
from zoo.routing.phatgoose_train import GateTrainingConfig, GateTrainingResult, train_phatgoose_gates
from zoo.routing.recorder import RoutingRecord, RoutingRecorder
from zoo.routing.registry import ROUTERS, RouterSpec, config_settings, get_router, router_config
from zoo.routing.vectors import ModuleRouting

__all__ = [
    "ROUTERS",
    "ArrowConfig",
    "GateTrainingConfig",
    "GateTrainingResult",
    "ModuleRouting",
    "PhatgooseConfig",
    "RoutedLinear",
    "RouterSpec",
    "RoutingHandle",
    "RoutingRecord",
    "RoutingRecorder",
    "StackedLora",
    "arrow_routing_vectors",
    "config_settings",
    "get_router",
    "route_model",
    "router_config",
    "train_phatgoose_gates",
]
