"""The shape-level rules of a PEFT LoRA checkpoint, on tensor names and shapes only (no torch).

Shared by the loader (which has the tensors) and the hub crawler (which has only the safetensors
header), so both refuse the same checkpoints with the same reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from zoo.adapters.config import AdapterConfig
from zoo.adapters.errors import InvalidAdapter, UnsupportedAdapter

T = TypeVar("T")

# <prefix>.<module>.lora_A[.<adapter name>].weight ; PEFT strips the adapter name when saving.
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$")
_PEFT_PREFIX = "base_model.model."
# Keys that identify a PEFT feature we cannot represent, with the reason reported for them.
_REFUSED_KEYS = (
    ("lora_magnitude_vector", UnsupportedAdapter, "DoRA magnitude vectors (lora_magnitude_vector)"),
    ("lora_embedding_", UnsupportedAdapter, "LoRA on an embedding layer (lora_embedding_A/B)"),
    ("modules_to_save", UnsupportedAdapter, "full module copies (modules_to_save)"),
)


def module_name(tensor_name: str) -> str:
    """The base-model module a LoRA tensor belongs to (the tensor name itself if it is not a LoRA key)."""
    match = _LORA_KEY.match(tensor_name)
    return match["module"].removeprefix(_PEFT_PREFIX) if match else tensor_name


def pair_lora_tensors(tensors: Mapping[str, T]) -> dict[str, dict[str, T]]:
    """Group checkpoint entries as ``{module: {"A": ..., "B": ...}}``, refusing what is not plain LoRA."""
    for marker, error, reason in _REFUSED_KEYS:
        for key in tensors:
            if marker in key:
                raise error(f"{reason}: {key}")
    pairs: dict[str, dict[str, T]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise UnsupportedAdapter(f"unexpected tensor {key!r}: not a PEFT LoRA weight")
        if match["param"] == "bias":
            raise UnsupportedAdapter(f"LoRA bias (lora_bias): {key}")
        pairs.setdefault(match["module"].removeprefix(_PEFT_PREFIX), {})[match["which"]] = tensor
    if not pairs:
        raise InvalidAdapter("no LoRA weights in the checkpoint")
    return dict(sorted(pairs.items()))


def require_pair(module: str, pair: Mapping[str, T]) -> tuple[T, T]:
    """The module's (A, B) entries, or an error naming the missing one."""
    if set(pair) != {"A", "B"}:
        missing = "lora_B" if "A" in pair else "lora_A"
        raise InvalidAdapter(f"{module}: {missing} missing")
    return pair["A"], pair["B"]


def check_module(
    module: str, a_shape: Sequence[int], b_shape: Sequence[int], floating: bool, dtypes: str, config: AdapterConfig
) -> int:
    """Check one module's ``lora_A``/``lora_B`` shapes against each other and the config; returns its rank.

    ``floating`` says whether both are floating point; ``dtypes`` names them for the error message.
    """
    if len(a_shape) != 2 or len(b_shape) != 2:
        raise UnsupportedAdapter(f"{module}: {len(a_shape)}-d LoRA weights (convolution layers are not supported)")
    if not floating:
        raise InvalidAdapter(f"{module}: LoRA weights must be floating point, got {dtypes}")
    rank = config.rank_for(module)
    if a_shape[0] != rank or b_shape[1] != rank:
        raise InvalidAdapter(f"{module}: weights have rank {a_shape[0]}/{b_shape[1]} (A/B) but the config gives rank {rank}")
    if not config.targets(module):
        raise InvalidAdapter(f"{module}: has LoRA weights but the config's target_modules do not select it")
    return rank
