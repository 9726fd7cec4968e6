"""Load a PEFT LoRA checkpoint (safetensors only) into normalised factors.

Pickled weights (``adapter_model.bin``) are never opened: hub files are untrusted. Everything that is
not a plain ``W0 + s * B @ A`` update on a linear layer is refused with a reason naming what was found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoo.adapters.config import AdapterConfig, parse_adapter_config
from zoo.adapters.errors import InvalidAdapter, UnsupportedAdapter
from zoo.adapters.factors import Adapter, LoraFactors

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"

# <prefix>.<module>.lora_A[.<adapter name>].weight ; PEFT strips the adapter name when saving.
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$")
_PEFT_PREFIX = "base_model.model."
# Keys that identify a PEFT feature we cannot represent, with the reason reported for them.
_REFUSED_KEYS = (
    ("lora_magnitude_vector", UnsupportedAdapter, "DoRA magnitude vectors (lora_magnitude_vector)"),
    ("lora_embedding_", UnsupportedAdapter, "LoRA on an embedding layer (lora_embedding_A/B)"),
    ("modules_to_save", UnsupportedAdapter, "full module copies (modules_to_save)"),
)


def load_adapter(path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Adapter:
    """Read a PEFT adapter folder (or its ``adapter_model.safetensors``) into an :class:`Adapter`.

    Factors are cast to ``dtype`` (float32 by default) *before* the scale is folded into ``B``, so a
    bf16 checkpoint loses nothing more than it already had.
    """
    folder = Path(path)
    if not folder.exists():
        raise InvalidAdapter(f"no adapter at {folder}")
    weights_path = folder / WEIGHTS_NAME if folder.is_dir() else folder
    folder = weights_path.parent
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise InvalidAdapter(f"{CONFIG_NAME} missing in {folder}")
    if not weights_path.is_file():
        if (folder / PICKLE_WEIGHTS_NAME).is_file():
            raise UnsupportedAdapter(f"only pickled weights ({PICKLE_WEIGHTS_NAME}); safetensors required")
        raise InvalidAdapter(f"{WEIGHTS_NAME} missing in {folder}")
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidAdapter(f"{CONFIG_NAME} is not valid JSON: {err}") from err
    config = parse_adapter_config(raw)
    try:
        state = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise InvalidAdapter(f"{WEIGHTS_NAME} is not a readable safetensors file: {err}") from err
    modules = factors_from_state_dict(state, config, dtype=dtype)
    return Adapter(
        modules=modules,
        base_model_name_or_path=config.base_model_name_or_path,
        fan_in_fan_out=config.fan_in_fan_out,
        task_type=config.task_type,
        config=config,
        source=str(folder),
    )


def factors_from_state_dict(
    state: dict[str, torch.Tensor], config: AdapterConfig, dtype: torch.dtype = torch.float32
) -> dict[str, LoraFactors]:
    """Pair ``lora_A``/``lora_B`` tensors per module, check them against the config, fold the scale into B."""
    for marker, error, reason in _REFUSED_KEYS:
        for key in state:
            if marker in key:
                raise error(f"{reason}: {key}")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise UnsupportedAdapter(f"unexpected tensor {key!r}: not a PEFT LoRA weight")
        if match["param"] == "bias":
            raise UnsupportedAdapter(f"LoRA bias (lora_bias): {key}")
        module = match["module"].removeprefix(_PEFT_PREFIX)
        pairs.setdefault(module, {})[match["which"]] = tensor
    if not pairs:
        raise InvalidAdapter("no LoRA weights in the checkpoint")
    return {module: _factors(module, pair, config, dtype) for module, pair in sorted(pairs.items())}


def _factors(module: str, pair: dict[str, torch.Tensor], config: AdapterConfig, dtype: torch.dtype) -> LoraFactors:
    if set(pair) != {"A", "B"}:
        missing = "lora_B" if "A" in pair else "lora_A"
        raise InvalidAdapter(f"{module}: {missing} missing")
    a, b = pair["A"], pair["B"]
    if a.ndim != 2 or b.ndim != 2:
        raise UnsupportedAdapter(f"{module}: {a.ndim}-d LoRA weights (convolution layers are not supported)")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise InvalidAdapter(f"{module}: LoRA weights must be floating point, got {a.dtype} and {b.dtype}")
    rank = config.rank_for(module)
    if a.shape[0] != rank or b.shape[1] != rank:
        raise InvalidAdapter(
            f"{module}: weights have rank {a.shape[0]}/{b.shape[1]} (A/B) but the config gives rank {rank}"
        )
    if not config.targets(module):
        raise InvalidAdapter(f"{module}: has LoRA weights but the config's target_modules do not select it")
    a, b = a.to(dtype), b.to(dtype)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InvalidAdapter(f"{module}: LoRA weights contain NaN or inf")
    return LoraFactors(A=a.contiguous(), B=(b * config.scale_for(module)).contiguous())
