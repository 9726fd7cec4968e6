"""LoRA modules from a safetensors header alone: which modules, ranks, shapes and dtypes.

The loader's own shape-level rules (``zoo.adapters.keys``), so the same checkpoints are refused
with the same reasons before any weight is downloaded; what needs the values themselves (NaN or
inf) is left to ``zoo.crawl.weights``.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.adapters import AdapterConfig
from zoo.adapters.keys import check_module, pair_lora_tensors, require_pair
from zoo.crawl.records import ModuleShape
from zoo.crawl.safetensors_header import SafetensorsHeader, TensorEntry

FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


@dataclass(frozen=True)
class LoraLayout:
    """The adapter's modules and totals, as the catalog records them."""

    modules: list[ModuleShape]
    dtype: str  # common dtype of the LoRA tensors, or 'mixed'
    parameter_count: int


def lora_layout(header: SafetensorsHeader, config: AdapterConfig) -> LoraLayout:
    """Pair ``lora_A``/``lora_B`` per module and check them against the config; raises with a reason."""
    pairs = pair_lora_tensors(header.tensors)
    modules = [_module(module, pair, config) for module, pair in pairs.items()]
    dtypes = {entry.dtype for entry in header.tensors.values()}
    return LoraLayout(
        modules=modules,
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
        parameter_count=sum(entry.numel for entry in header.tensors.values()),
    )


def _module(module: str, pair: dict[str, TensorEntry], config: AdapterConfig) -> ModuleShape:
    a, b = require_pair(module, pair)
    floating = a.dtype in FLOAT_DTYPES and b.dtype in FLOAT_DTYPES
    rank = check_module(module, a.shape, b.shape, floating, f"{a.dtype} and {b.dtype}", config)
    return ModuleShape(
        module=module,
        rank=rank,
        d_in=a.shape[1],
        d_out=b.shape[0],
        dtype=a.dtype if a.dtype == b.dtype else "mixed",
        alpha=config.alpha_for(module),
        scale=config.scale_for(module),
    )
