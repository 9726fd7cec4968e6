"""Write an :class:`Adapter` back in PEFT's format.

The scale already sits in ``B``, so every module is saved with ``lora_alpha == r`` (scale 1, no rsLoRA);
modules whose rank differs from the most common one get exact-name ``rank_pattern``/``alpha_pattern``
entries (merged adapters often have per-module ranks). ``target_modules`` lists the exact module names.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from zoo.adapters.files import CONFIG_NAME, WEIGHTS_NAME

if TYPE_CHECKING:  # annotations only: factors.py calls into this module
    from zoo.adapters.factors import Adapter


def peft_config_dict(adapter: Adapter, base_model_name_or_path: str | None = None) -> dict[str, Any]:
    """The ``adapter_config.json`` content for ``adapter`` (scale 1 everywhere)."""
    ranks = adapter.ranks()
    if not ranks:
        raise ValueError("cannot save an adapter without modules")
    r = Counter(ranks.values()).most_common(1)[0][0]
    # PEFT matches pattern keys as regexes against a dotted suffix; an escaped full name matches only itself.
    pattern = {re.escape(name): rank for name, rank in ranks.items() if rank != r}
    return {
        "peft_type": "LORA",
        "task_type": adapter.task_type,
        "base_model_name_or_path": base_model_name_or_path or adapter.base_model_name_or_path,
        "r": r,
        "lora_alpha": r,
        "rank_pattern": pattern,
        "alpha_pattern": dict(pattern),
        "use_rslora": False,
        "use_dora": False,
        "target_modules": sorted(ranks),
        "fan_in_fan_out": adapter.fan_in_fan_out,
        "bias": "none",
        "lora_dropout": 0.0,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
    }


def save_adapter(
    adapter: Adapter,
    directory: str | Path,
    base_model_name_or_path: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write config + safetensors into ``directory`` (created) and return it."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = peft_config_dict(adapter, base_model_name_or_path)
    state: dict[str, torch.Tensor] = {}
    for name, factors in adapter.modules.items():
        prefix = f"base_model.model.{name}"
        state[f"{prefix}.lora_A.weight"] = factors.A.detach().to("cpu", dtype or factors.A.dtype).contiguous()
        state[f"{prefix}.lora_B.weight"] = factors.B.detach().to("cpu", dtype or factors.B.dtype).contiguous()
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder
