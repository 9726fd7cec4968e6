"""An adapter's fingerprint: what later steps need from its weights, computed once per commit.

Per module: the update's norm, its Arrow prototype (top right singular vector, ``sigma_1`` and
``sigma_2 / sigma_1``) and a seeded ``k x k`` sketch whose inner products estimate those of the updates.
Stored in the catalog, they let clustering and routing vectors be recomputed without the weight files.
All of it comes from the factors (DESIGN.md section 4); no ``B @ A`` is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.adapters.factors import Adapter
from zoo.algebra.inner import module_inner
from zoo.algebra.prototypes import arrow_prototype_details
from zoo.algebra.sketch import sketch

# Bump when what a fingerprint holds or how it is computed changes: stored ones are then recomputed.
FINGERPRINT_VERSION = 1


@dataclass(frozen=True)
class ModuleFingerprint:
    module: str
    rank: int
    d_in: int
    d_out: int
    norm: float
    sigma_1: float
    sigma_ratio: float
    prototype: list[float]
    sketch: list[float]  # k x k, row-major


@dataclass(frozen=True)
class AdapterFingerprint:
    norm: float
    parameter_count: int
    modules: list[ModuleFingerprint]


def fingerprint_adapter(adapter: Adapter, sketch_size: int, seed: int, device: str = "cpu") -> AdapterFingerprint:
    """Norms, prototypes and sketches of every module of ``adapter``."""
    prototypes = arrow_prototype_details(adapter, device=device)
    sketches = sketch(adapter, k=sketch_size, seed=seed, device=device)
    modules = []
    for name, factors in adapter.modules.items():
        proto = prototypes[name]
        modules.append(ModuleFingerprint(
            module=name, rank=factors.rank, d_in=factors.d_in, d_out=factors.d_out,
            norm=float(module_inner(factors, factors)) ** 0.5, sigma_1=proto.sigma_1, sigma_ratio=proto.sigma_ratio,
            prototype=proto.vector.tolist(), sketch=sketches[name].reshape(-1).tolist(),
        ))
    norm = sum(m.norm**2 for m in modules) ** 0.5
    return AdapterFingerprint(norm=norm, parameter_count=adapter.num_parameters, modules=modules)


def sketches_from_rows(rows: list[dict], sketch_size: int) -> dict[str, torch.Tensor]:
    """One adapter's stored ``{module: (k, k)}`` sketches back from catalog rows (``module``, ``sketch``)."""
    return {r["module"]: torch.tensor(r["sketch"], dtype=torch.float32).reshape(sketch_size, sketch_size)
            for r in rows}
