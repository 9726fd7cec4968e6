"""PHATGOOSE: per-token routing by gates trained post hoc on each expert's data (registers ``phatgoose``)."""

from zoo.routing.phatgoose.router import (
    GATE,
    PhatgooseConfig,
    PhatgooseRouter,
    PhatgooseScorer,
    gated_routing,
    standardise,
)
from zoo.routing.phatgoose.train import GateTrainingConfig, GateTrainingResult, train_gates, train_phatgoose_gates
from zoo.routing.registry import register_router

register_router(PhatgooseRouter())

__all__ = ["GATE", "GateTrainingConfig", "GateTrainingResult", "PhatgooseConfig", "PhatgooseRouter", "PhatgooseScorer",
           "gated_routing", "standardise", "train_gates", "train_phatgoose_gates"]
