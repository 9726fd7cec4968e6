"""LoRA adapters as plain factors: config normalisation (torch-free), loading, saving.

The config part is imported eagerly and never pulls torch, so the hub crawler can classify configs
cheaply; the factor classes and the loader/saver are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.adapters.config import AdapterConfig, check_adapter_config, parse_adapter_config
from zoo.adapters.errors import AdapterError, InvalidAdapter, UnsupportedAdapter

if TYPE_CHECKING:
    from zoo.adapters.factors import Adapter, LoraFactors
    from zoo.adapters.load import load_adapter

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "InvalidAdapter",
    "LoraFactors",
    "UnsupportedAdapter",
    "check_adapter_config",
    "load_adapter",
    "parse_adapter_config",
]

_LAZY = {
    "Adapter": "zoo.adapters.factors",
    "LoraFactors": "zoo.adapters.factors",
    "load_adapter": "zoo.adapters.load",
}


def __getattr__(name: str) -> Any:
    """Import the torch-backed names on first access (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.adapters' has no attribute {name!r}")
