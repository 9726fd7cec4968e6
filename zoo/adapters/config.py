"""Normalised view of a raw PEFT ``adapter_config.json``: what the crawler records and the loader obeys.

Pure Python on purpose (no torch): the hub crawler classifies thousands of configs without touching a
weight file. Per-module rank, alpha and targeting are resolved exactly as PEFT 0.21 resolves them
(``peft.utils.other.get_pattern_key``, ``peft.tuners.tuners_utils.check_target_module_exists``), so that
``scale_for(m)`` is the scale PEFT applies to module ``m``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from zoo.adapters.errors import AdapterError, InvalidAdapter, UnsupportedAdapter

# LoRA options whose forward or merge is not ``W0 + s * B @ A`` on the unmodified base (name -> why).
_UNSUPPORTED_LORA_OPTIONS = {
    "use_dora": "DoRA (use_dora): per-column magnitudes rescale W0 + BA, not a plain LoRA delta",
    "lora_bias": "lora_bias: lora_B carries a bias vector",
    "use_qalora": "QA-LoRA (use_qalora): A acts on group-pooled inputs",
    "alora_invocation_tokens": "aLoRA (alora_invocation_tokens): the delta applies only after invocation tokens",
    "velora_config": "VeLoRA (velora_config): not a plain LoRA delta",
    "monteclora_config": "MonteCLoRA (monteclora_config): stochastic LoRA variant",
    "use_bdlora": "block-diagonal LoRA (use_bdlora): factors are not dense A/B matrices",
    "arrow_config": "arrow_config: a routed LoRA library, not a single adapter",
    "kasa_config": "KaSA (kasa_config): not a plain LoRA delta",
    "target_parameters": "target_parameters: LoRA on raw nn.Parameters (e.g. MoE experts)",
    "layer_replication": "layer_replication: the adapter changes the model's layer structure",
    "trainable_token_indices": "trainable_token_indices: the adapter edits embedding rows",
    "modules_to_save": "modules_to_save: full trained copies of base modules, not LoRA factors",
}
# init_lora_weights values whose saved factors only make sense on a modified (residual/quantised) base.
_BASE_MODIFYING_INITS = ("pissa", "olora", "corda", "loftq")
_BIAS_VALUES = ("none", "all", "lora_only")


@dataclass(frozen=True)
class AdapterConfig:
    """A LoRA config with PEFT's defaults filled in and every field type-checked.

    ``target_modules`` is a list of module-name suffixes or a regex string (full match), as in PEFT;
    ``None`` means the config does not say (the weight file decides). ``raw`` keeps the source dict so
    that a saved copy can carry fields this class does not interpret.
    """

    peft_type: str
    r: int
    lora_alpha: float
    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    use_rslora: bool = False
    use_dora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    fan_in_fan_out: bool = False
    bias: str = "none"
    task_type: str | None = None
    base_model_name_or_path: str | None = None
    revision: str | None = None
    layers_to_transform: list[int] | int | None = None
    layers_pattern: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    init_lora_weights: bool | str = True
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def rank_for(self, module_name: str) -> int:
        """Rank PEFT gives ``module_name`` (a ``named_modules`` key such as ``model.layers.0.self_attn.q_proj``)."""
        return self.rank_pattern.get(_pattern_key(self.rank_pattern, module_name), self.r)

    def alpha_for(self, module_name: str) -> float:
        """``lora_alpha`` PEFT gives ``module_name``."""
        return self.alpha_pattern.get(_pattern_key(self.alpha_pattern, module_name), self.lora_alpha)

    def scale_for(self, module_name: str) -> float:
        """PEFT's ``scaling``: ``alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA."""
        r = self.rank_for(module_name)
        alpha = self.alpha_for(module_name)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def targets(self, module_name: str) -> bool:
        """Whether PEFT would inject a LoRA layer at ``module_name`` (exclusions and layer filters included)."""
        key = module_name
        if self.exclude_modules:
            if isinstance(self.exclude_modules, str):
                if re.fullmatch(self.exclude_modules, key):
                    return False
            elif key in self.exclude_modules or any(key.endswith(f".{m}") for m in self.exclude_modules):
                return False
        if self.modules_to_save and any(re.match(rf"(^|.*\.){m}($|\..*)", key) for m in self.modules_to_save):
            return False
        if self.target_modules is None or self.target_modules == "all-linear":
            return True
        if isinstance(self.target_modules, str):
            return re.fullmatch(self.target_modules, key) is not None
        if key in self.target_modules:
            return True
        if not any(key.endswith(f".{t}") for t in self.target_modules):
            return False
        return self._in_transformed_layers(key)

    def _in_transformed_layers(self, key: str) -> bool:
        """``layers_to_transform`` filter; PEFT applies it only to suffix matches of a list target."""
        wanted = self.layers_to_transform
        if wanted is None or (isinstance(wanted, list) and not wanted):
            return True
        match = None
        if not self.layers_pattern:
            match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
        else:
            patterns = [self.layers_pattern] if isinstance(self.layers_pattern, str) else self.layers_pattern
            for pattern in patterns:
                match = re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key)
                if match is not None:
                    break
        if match is None:
            return False
        index = int(match.group("idx"))
        return index == wanted if isinstance(wanted, int) else index in wanted

    def to_dict(self) -> dict[str, Any]:
        """The interpreted fields as plain JSON-able data (what the catalog records)."""
        return {
            "peft_type": self.peft_type,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "target_modules": self.target_modules,
            "exclude_modules": self.exclude_modules,
            "use_rslora": self.use_rslora,
            "use_dora": self.use_dora,
            "rank_pattern": dict(self.rank_pattern),
            "alpha_pattern": dict(self.alpha_pattern),
            "fan_in_fan_out": self.fan_in_fan_out,
            "bias": self.bias,
            "task_type": self.task_type,
            "base_model_name_or_path": self.base_model_name_or_path,
            "revision": self.revision,
            "layers_to_transform": self.layers_to_transform,
            "layers_pattern": self.layers_pattern,
            "modules_to_save": self.modules_to_save,
            "init_lora_weights": self.init_lora_weights,
        }


def _pattern_key(patterns: dict[str, Any], module_name: str) -> str:
    """PEFT's ``get_pattern_key``: the first pattern key that matches a dotted suffix of the name."""
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module_name):
            return key
    return module_name


def parse_adapter_config(raw: dict[str, Any]) -> AdapterConfig:
    """Validate and normalise a raw ``adapter_config.json`` dict.

    Raises ``InvalidAdapter`` for missing or ill-typed fields and ``UnsupportedAdapter`` for anything that
    is not a plain LoRA delta on the unmodified base (non-LoRA PEFT types, DoRA, bias training, ...).
    ``r`` and ``lora_alpha`` are required although PEFT would default them: guessing them would guess the scale.
    """
    if not isinstance(raw, dict):
        raise InvalidAdapter(f"adapter_config must be a JSON object, got {type(raw).__name__}")
    peft_type = raw.get("peft_type")
    if not isinstance(peft_type, str):
        raise InvalidAdapter("peft_type missing" if peft_type is None else "peft_type must be a string")
    if peft_type.upper() != "LORA":
        raise UnsupportedAdapter(f"peft_type {peft_type}: only LoRA adapters are supported")

    config = AdapterConfig(
        peft_type="LORA",
        r=_positive_int(raw, "r"),
        lora_alpha=_number(raw, "lora_alpha"),
        target_modules=_names_or_regex(raw, "target_modules"),
        exclude_modules=_names_or_regex(raw, "exclude_modules"),
        use_rslora=_bool(raw, "use_rslora"),
        use_dora=_bool(raw, "use_dora"),
        rank_pattern=_pattern(raw, "rank_pattern", _is_positive_int),
        alpha_pattern={k: float(v) for k, v in _pattern(raw, "alpha_pattern", _is_number).items()},
        fan_in_fan_out=_bool(raw, "fan_in_fan_out"),
        bias=_bias(raw),
        task_type=_optional_str(raw, "task_type"),
        base_model_name_or_path=_optional_str(raw, "base_model_name_or_path"),
        revision=_optional_str(raw, "revision"),
        layers_to_transform=_layers(raw),
        layers_pattern=_names_or_regex(raw, "layers_pattern"),
        modules_to_save=_optional_str_list(raw, "modules_to_save"),
        init_lora_weights=_init(raw),
        raw=dict(raw),
    )
    _refuse_unsupported(raw, config)
    return config


def check_adapter_config(raw: dict[str, Any]) -> tuple[str, str | None]:
    """``("ok", None)``, ``("unsupported", reason)`` or ``("invalid", reason)``: the crawler's one-liner."""
    try:
        parse_adapter_config(raw)
    except AdapterError as err:
        return err.status, err.reason
    return "ok", None


def _refuse_unsupported(raw: dict[str, Any], config: AdapterConfig) -> None:
    if config.bias != "none":
        raise UnsupportedAdapter(f"bias={config.bias!r}: the adapter also trains base-model biases")
    for option, reason in _UNSUPPORTED_LORA_OPTIONS.items():
        if raw.get(option):
            raise UnsupportedAdapter(reason)
    init = config.init_lora_weights
    if isinstance(init, str) and init.lower().startswith(_BASE_MODIFYING_INITS):
        raise UnsupportedAdapter(
            f"init_lora_weights={init!r}: the factors apply to a modified (residual or quantised) base model"
        )


# --- field checks: each returns the normalised value or raises InvalidAdapter naming the field ---------


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(raw: dict[str, Any], name: str) -> int:
    if name not in raw or raw[name] is None:
        raise InvalidAdapter(f"{name} missing")
    if not _is_positive_int(raw[name]):
        raise InvalidAdapter(f"{name} must be a positive integer, got {raw[name]!r}")
    return raw[name]


def _number(raw: dict[str, Any], name: str) -> float:
    if name not in raw or raw[name] is None:
        raise InvalidAdapter(f"{name} missing")
    if not _is_number(raw[name]):
        raise InvalidAdapter(f"{name} must be a finite number, got {raw[name]!r}")
    return float(raw[name])


def _bool(raw: dict[str, Any], name: str) -> bool:
    value = raw.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidAdapter(f"{name} must be true or false, got {value!r}")
    return value


def _optional_str(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidAdapter(f"{name} must be a string, got {value!r}")
    return value


def _optional_str_list(raw: dict[str, Any], name: str) -> list[str] | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidAdapter(f"{name} must be a list of strings, got {value!r}")
    return list(value)


def _names_or_regex(raw: dict[str, Any], name: str) -> list[str] | str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return _regex(name, value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(value))
    raise InvalidAdapter(f"{name} must be a list of module names or a regex string, got {value!r}")


def _regex(name: str, value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise InvalidAdapter(f"{name} is not a valid regex: {err}") from err
    return value


def _pattern(raw: dict[str, Any], name: str, valid: Any) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and valid(v) for k, v in value.items()):
        raise InvalidAdapter(f"{name} must map module patterns to {'ranks' if name == 'rank_pattern' else 'numbers'}")
    for key in value:
        _regex(name, key)
    return dict(value)


def _bias(raw: dict[str, Any]) -> str:
    value = raw.get("bias", "none")
    if value is None:
        return "none"
    if value not in _BIAS_VALUES:
        raise InvalidAdapter(f"bias must be one of {_BIAS_VALUES}, got {value!r}")
    return value


def _layers(raw: dict[str, Any]) -> list[int] | int | None:
    value = raw.get("layers_to_transform")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise InvalidAdapter(f"layers_to_transform must be an integer or a list of integers, got {value!r}")


def _init(raw: dict[str, Any]) -> bool | str:
    value = raw.get("init_lora_weights", True)
    if value is None:
        return True
    if not isinstance(value, bool | str):
        raise InvalidAdapter(f"init_lora_weights must be a boolean or a string, got {value!r}")
    return value
