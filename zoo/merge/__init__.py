"""Merging LoRA adapters: ``merge(adapters, method, weights=None, rank=None, **opts) -> Adapter``.

Each method is one module registering a row of :data:`METHODS`; importing this package imports every
module in it, so a new method needs no edit here.
"""

import importlib
import pkgutil

from zoo.merge.core import merge
from zoo.merge.registry import METHODS, MergeMethod, get_method, register

for _found in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_found.name}")

__all__ = ["METHODS", "MergeMethod", "get_method", "merge", "register"]
