"""Candidate kinds, one module each, registered on import (a new kind needs no edit here)."""

import importlib
import pkgutil

from zoo.candidates.kinds.registry import KINDS, Applied, CandidateKind, get_kind, register_kind

for _found in pkgutil.iter_modules(__path__):
    if _found.name not in ("registry", "adapter_folder"):
        importlib.import_module(f"{__name__}.{_found.name}")

__all__ = ["KINDS", "Applied", "CandidateKind", "get_kind", "register_kind"]
