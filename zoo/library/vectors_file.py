"""``routing.safetensors``: every module's routing vectors and the library indices of their experts, and the
router's own tensors.

Keys are ``<module>/vectors`` (``(E, d_in)`` float32), ``<module>/experts`` (``(E,)`` int64) and
``router/<name>`` for the router-wide state (a per-example router's embeddings, say). The bytes are
hashed as written, so the manifest's hash pins exactly what a router scores against.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from zoo.library.manifest import LibraryError
from zoo.routing import ModuleRouting


STATE = "router/"


def routing_to_bytes(routing: Mapping[str, ModuleRouting], state: Mapping[str, torch.Tensor] | None = None) -> bytes:
    tensors = {f"{STATE}{name}": t.detach().to("cpu").contiguous() for name, t in (state or {}).items()}
    for name, entry in routing.items():
        tensors[f"{name}/vectors"] = entry.vectors.detach().to("cpu", torch.float32).contiguous()
        tensors[f"{name}/experts"] = torch.tensor(entry.experts, dtype=torch.int64)
    return save(tensors, metadata={"format": "pt"})


def routing_from_bytes(data: bytes) -> tuple[dict[str, ModuleRouting], dict[str, torch.Tensor]]:
    """The per-module routing and the router's state."""
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise LibraryError(f"routing.safetensors is not readable: {err}") from err
    state = {key[len(STATE):]: tensors.pop(key) for key in list(tensors) if key.startswith(STATE)}
    names = sorted({key.rpartition("/")[0] for key in tensors})
    routing = {}
    for name in names:
        vectors, experts = tensors.get(f"{name}/vectors"), tensors.get(f"{name}/experts")
        if vectors is None or experts is None or experts.dtype != torch.int64 or experts.ndim != 1:
            raise LibraryError(f"routing.safetensors: {name!r} needs float vectors and int64 experts")
        try:
            routing[name] = ModuleRouting(experts.tolist(), vectors.float())
        except ValueError as err:
            raise LibraryError(f"routing.safetensors: {name}: {err}") from err
    return routing, state
