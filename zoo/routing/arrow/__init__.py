"""Arrow: data-free per-token routing by each expert's prototype (registers the ``arrow`` router)."""

from zoo.routing.arrow.router import PROTOTYPE, ArrowConfig, ArrowRouter, arrow_routing_vectors, centre_prototypes
from zoo.routing.registry import register_router

register_router(ArrowRouter())

__all__ = ["PROTOTYPE", "ArrowConfig", "ArrowRouter", "arrow_routing_vectors", "centre_prototypes"]
