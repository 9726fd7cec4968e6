"""Metrics as plug-ins: every module in this folder registers its metric when the package is imported.

See ``registry.py`` for the contract; ``docs/architecture.md`` ("How to add a metric") for the recipe.
"""

import importlib
import pkgutil

from zoo.eval.metrics.registry import (
    METRICS,
    ExampleResult,
    Metric,
    get_metric,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METRICS", "ExampleResult", "Metric", "get_metric", "register"]
