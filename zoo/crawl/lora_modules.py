"""LoRA modules from a safetensors header alone: which modules, ranks, shapes and dtypes.

These are the shape-level rules of ``zoo.adapters.load.factors_from_state_dict`` with the same
reasons, applied before any weight is downloaded; what needs the values themselves (NaN or inf)
is left to ``zoo.crawl.weights``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zoo.adapters import AdapterConfig, InvalidAdapter, UnsupportedAdapter
from zoo.crawl.records import ModuleShape
from zoo.crawl.safetensors_header import SafetensorsHeader, TensorEntry

# <prefix>.<module>.lora_A[.<adapter name>].weight ; PEFT strips the adapter name when saving.
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$")
_PEFT_PREFIX = "base_model.model."
_REFUSED_KEYS = (
    ("lora_magnitude_vector", UnsupportedAdapter, "DoRA magnitude vectors (lora_magnitude_vector)"),
    ("lora_embedding_", UnsupportedAdapter, "LoRA on an embedding layer (lora_embedding_A/B)"),
    ("modules_to_save", UnsupportedAdapter, "full module copies (modules_to_save)"),
)
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


@dataclass(frozen=True)
class LoraLayout:
    """The adapter's modules and totals, as the catalog records them."""

    modules: list[ModuleShape]
    dtype: str  # common dtype of the LoRA tensors, or 'mixed'
    parameter_count: int


def lora_layout(header: SafetensorsHeader, config: AdapterConfig) -> LoraLayout:
    """Pair ``lora_A``/``lora_B`` per module and check them against the config; raises with a reason."""
    pairs: dict[str, dict[str, TensorEntry]] = {}
    for name, entry in header.tensors.items():
        for marker, error, reason in _REFUSED_KEYS:
            if marker in name:
                raise error(f"{reason}: {name}")
        match = _LORA_KEY.match(name)
        if match is None:
            raise UnsupportedAdapter(f"unexpected tensor {name!r}: not a PEFT LoRA weight")
        if match["param"] == "bias":
            raise UnsupportedAdapter(f"LoRA bias (lora_bias): {name}")
        module = match["module"].removeprefix(_PEFT_PREFIX)
        pairs.setdefault(module, {})[match["which"]] = entry
    if not pairs:
        raise InvalidAdapter("no LoRA weights in the checkpoint")
    modules = [_module(module, pair, config) for module, pair in sorted(pairs.items())]
    dtypes = {entry.dtype for entry in header.tensors.values()}
    return LoraLayout(
        modules=modules,
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
        parameter_count=sum(entry.numel for entry in header.tensors.values()),
    )


def module_name(tensor_name: str) -> str:
    """The base-model module a LoRA tensor belongs to (the tensor name itself if it is not a LoRA key)."""
    match = _LORA_KEY.match(tensor_name)
    return match["module"].removeprefix(_PEFT_PREFIX) if match else tensor_name


def _module(module: str, pair: dict[str, TensorEntry], config: AdapterConfig) -> ModuleShape:
    if set(pair) != {"A", "B"}:
        missing = "lora_B" if "A" in pair else "lora_A"
        raise InvalidAdapter(f"{module}: {missing} missing")
    a, b = pair["A"], pair["B"]
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise UnsupportedAdapter(f"{module}: {len(a.shape)}-d LoRA weights (convolution layers are not supported)")
    if a.dtype not in FLOAT_DTYPES or b.dtype not in FLOAT_DTYPES:
        raise InvalidAdapter(f"{module}: LoRA weights must be floating point, got {a.dtype} and {b.dtype}")
    rank = config.rank_for(module)
    if a.shape[0] != rank or b.shape[1] != rank:
        raise InvalidAdapter(
            f"{module}: weights have rank {a.shape[0]}/{b.shape[1]} (A/B) but the config gives rank {rank}"
        )
    if not config.targets(module):
        raise InvalidAdapter(f"{module}: has LoRA weights but the config's target_modules do not select it")
    return ModuleShape(
        module=module,
        rank=rank,
        d_in=a.shape[1],
        d_out=b.shape[0],
        dtype=a.dtype if a.dtype == b.dtype else "mixed",
        alpha=config.alpha_for(module),
        scale=config.scale_for(module),
    )
