"""Load a PEFT LoRA checkpoint (safetensors only) into normalised factors.

Pickled weights (``adapter_model.bin``) are never opened: hub files are untrusted. Everything that is
not a plain ``W0 + s * B @ A`` update on a linear layer is refused with a reason naming what was found.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoo.adapters.config import AdapterConfig, parse_adapter_config
from zoo.adapters.errors import InvalidAdapter, UnsupportedAdapter
from zoo.adapters.factors import Adapter, LoraFactors
from zoo.adapters.files import CONFIG_NAME, PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
from zoo.adapters.keys import check_module, pair_lora_tensors, require_pair


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
    pairs = pair_lora_tensors(state)
    return {module: _factors(module, pair, config, dtype) for module, pair in pairs.items()}


def _factors(module: str, pair: dict[str, torch.Tensor], config: AdapterConfig, dtype: torch.dtype) -> LoraFactors:
    a, b = require_pair(module, pair)
    floating = a.is_floating_point() and b.is_floating_point()
    check_module(module, a.shape, b.shape, floating, f"{a.dtype} and {b.dtype}", config)
    a, b = a.to(dtype), b.to(dtype)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InvalidAdapter(f"{module}: LoRA weights contain NaN or inf")
    return LoraFactors(A=a.contiguous(), B=(b * config.scale_for(module)).contiguous())
