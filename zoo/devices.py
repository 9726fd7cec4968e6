"""``auto`` as a device name: decided where the work runs, so that one deployment serves CPU and GPU workers."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when this machine has a GPU, else ``cpu``; any other name as given."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
