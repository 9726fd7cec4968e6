"""An adapter as a dict of normalised LoRA factors: ``dW = B @ A`` with the scale already in ``B``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from zoo.adapters.config import AdapterConfig
from zoo.adapters.errors import InvalidAdapter


@dataclass(frozen=True)
class LoraFactors:
    """One module's update ``dW = B @ A`` in the mathematical layout ``y = W x``.

    ``A: (r, d_in)``, ``B: (d_out, r)``; PEFT's ``scaling`` is folded into ``B``, so no config is needed
    to interpret them.
    """

    A: torch.Tensor
    B: torch.Tensor

    def __post_init__(self) -> None:
        if self.A.ndim != 2 or self.B.ndim != 2 or self.A.shape[0] != self.B.shape[1]:
            raise ValueError(f"LoRA factors must be A (r, d_in) and B (d_out, r), got {tuple(self.A.shape)} "
                             f"and {tuple(self.B.shape)}")

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def d_in(self) -> int:
        return self.A.shape[1]

    @property
    def d_out(self) -> int:
        return self.B.shape[0]

    def delta(self) -> torch.Tensor:
        """Dense ``(d_out, d_in)`` update; a reference, and the input of element-wise merges."""
        return self.B @ self.A

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> LoraFactors:
        return LoraFactors(self.A.to(device=device, dtype=dtype), self.B.to(device=device, dtype=dtype))


@dataclass
class Adapter:
    """A LoRA adapter reduced to what it does to the base weights.

    ``modules`` maps base-model module names (``model.layers.0.self_attn.q_proj``, the keys of
    ``named_modules()``) to factors. ``fan_in_fan_out`` records that the base stores its weights as
    ``(d_in, d_out)`` (GPT-2 ``Conv1D``), which only matters when a dense delta is added to those weights.
    ``config`` is the source config (``None`` for merged adapters); ``source`` says where it came from.
    """

    modules: dict[str, LoraFactors]
    base_model_name_or_path: str | None = None
    fan_in_fan_out: bool = False
    task_type: str | None = None
    config: AdapterConfig | None = field(default=None, repr=False)
    source: str | None = None

    def delta(self, name: str) -> torch.Tensor:
        """Dense update of module ``name`` in the base weight's own layout: exactly what PEFT adds to it."""
        dw = self.modules[name].delta()
        return dw.T if self.fan_in_fan_out else dw

    @property
    def module_names(self) -> list[str]:
        return list(self.modules)

    @property
    def num_parameters(self) -> int:
        return sum(f.A.numel() + f.B.numel() for f in self.modules.values())

    def ranks(self) -> dict[str, int]:
        return {name: f.rank for name, f in self.modules.items()}

    def check_fits(self, weight_shapes: Mapping[str, Sequence[int]]) -> None:
        """Raise ``InvalidAdapter`` unless every module exists in the base with a weight of the delta's shape.

        ``weight_shapes`` maps base module names to their weight shapes as stored (e.g. read from the base
        checkpoint's header); an adapter trained for another model fails here, not at merge time.
        """
        for name, f in self.modules.items():
            if name not in weight_shapes:
                raise InvalidAdapter(f"{name}: no such module in the base model")
            expected = (f.d_in, f.d_out) if self.fan_in_fan_out else (f.d_out, f.d_in)
            if tuple(weight_shapes[name]) != expected:
                raise InvalidAdapter(
                    f"{name}: update is {expected} but the base weight is {tuple(weight_shapes[name])}"
                )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Adapter:
        return self.with_modules({n: f.to(device, dtype) for n, f in self.modules.items()})

    def with_modules(self, modules: dict[str, LoraFactors]) -> Adapter:
        """The same adapter metadata around new factors (what merges and gauge tests build)."""
        return replace(self, modules=modules)

    def subset(self, names: Iterable[str]) -> Adapter:
        return self.with_modules({n: self.modules[n] for n in names})

    def save_pretrained(
        self,
        directory: str | Path,
        base_model_name_or_path: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path:
        """Write ``adapter_config.json`` + ``adapter_model.safetensors`` that ``PeftModel.from_pretrained`` loads.

        ``base_model_name_or_path`` overrides the one carried from the source adapter.
        """
        from zoo.adapters.save import save_adapter

        return save_adapter(self, directory, base_model_name_or_path=base_model_name_or_path, dtype=dtype)


def module_owners(adapters: Sequence[Adapter]) -> dict[str, list[int]]:
    """``{module: indices of the adapters that adapt it, ascending}``: a library's per-module expert lists."""
    owners: dict[str, list[int]] = {}
    for index, adapter in enumerate(adapters):
        for name in adapter.modules:
            owners.setdefault(name, []).append(index)
    return owners
