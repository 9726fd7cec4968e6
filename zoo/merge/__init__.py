"""Merging LoRA adapters: ``merge(adapters, method, weights=None, rank=None, **opts) -> Adapter``.

Each method is one module registering a row of :data:`METHODS`; importing this package registers them all.
"""

from zoo.merge import (  # noqa: F401  (imported for their registrations)
    breadcrumbs,
    dare_linear,
    dare_ties,
    linear,
    magnitude_prune,
    task_arithmetic,
    ties,
)
from zoo.merge.core import merge
from zoo.merge.registry import METHODS, MergeMethod, get_method, register

__all__ = ["METHODS", "MergeMethod", "get_method", "merge", "register"]
