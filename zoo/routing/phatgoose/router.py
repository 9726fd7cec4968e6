"""PHATGOOSE routing (Muqeeth et al., 2024): post-hoc trained gates, one vector per expert and module.

Each gate ``g_e`` was trained (``zoo.routing.phatgoose.train``) so that the module computes
``W0 h + sigmoid(<g_e, h>) B_e A_e h`` on the expert's own data. At inference both the token and the
gates are standardised over features (zero mean, unit variance), which puts gates trained separately on
one scale, and a token scores ``<h_hat, g_hat_e> / sqrt(d)``.

Experts without training data carry their Arrow prototype instead of a gate (``routed_by``); a
prototype's sign is arbitrary, so they score ``|<h_hat, v_hat_e>| / sqrt(d)``, the same standardised
similarity without the sign.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.routing.arrow import PROTOTYPE, arrow_routing_vectors
from zoo.routing.phatgoose.train import GateTrainingConfig, train_gates
from zoo.routing.router import FitData, Fitted, Router
from zoo.routing.vectors import ModuleRouting

_EPS = 1e-6
# How a member's vectors were made: a gate trained on its data (else its Arrow prototype, ``PROTOTYPE``).
GATE = "phatgoose-gate"


@dataclass(frozen=True)
class PhatgooseConfig:
    """``top_k`` experts kept per token (softmax over the kept); the paper uses 2."""

    top_k: int = 2

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit (biased) variance over the last dimension: ``(..., d) -> (..., d)``.

    That is layer norm without its affine part: one fused kernel per token batch instead of five."""
    return F.layer_norm(x, x.shape[-1:], eps=_EPS)


class PhatgooseScorer(nn.Module):
    """``h: (n, d_in) -> (n, E)``: ``<h_hat, g_hat_e> / sqrt(d)``, in absolute value for prototype fallbacks.

    The gates are standardised once, with the ``1 / sqrt(d)`` folded in; ``sign_free`` is ``None`` when no
    member fell back, so the per-token absolute value is skipped."""

    def __init__(self, vectors: torch.Tensor, sign_free: torch.Tensor) -> None:
        super().__init__()
        prepared = standardise(vectors.float()) / math.sqrt(vectors.shape[-1])
        self.register_buffer("vectors", prepared.contiguous(), persistent=False)
        self.register_buffer("sign_free", sign_free if sign_free.any() else None, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = standardise(h) @ self.vectors.float().T
        if self.sign_free is not None:
            logits = torch.where(self.sign_free, logits.abs(), logits)
        return logits


class PhatgooseRouter(Router):
    """Gates trained post hoc on each member's own data; members without data keep their Arrow prototype."""

    name = "phatgoose"
    reference = "Muqeeth et al. 2024, Learning to Route Among Specialized Experts for Zero-Shot Generalization"
    config_class = PhatgooseConfig
    fit_class = GateTrainingConfig

    def fit(self, experts: Sequence[Adapter], config: PhatgooseConfig, fit_config: GateTrainingConfig,
            data: FitData | None) -> Fitted:
        gates: dict[int, dict[str, torch.Tensor]] = {}
        if data is not None:
            examples = {i: data.examples(i) for i in range(len(experts))}
            if any(examples.values()):
                model, tokenizer = data.base_model()
                gates = train_gates(model, tokenizer, experts, examples, fit_config)
        return gated_routing(experts, gates)

    def scorer(self, vectors: torch.Tensor, routed_by: Sequence[str], config: PhatgooseConfig) -> nn.Module:
        return PhatgooseScorer(vectors, torch.tensor([note == PROTOTYPE for note in routed_by], dtype=torch.bool))


def gated_routing(experts: Sequence[Adapter], gates: Mapping[int, Mapping[str, torch.Tensor]]) -> Fitted:
    """Every member's prototypes, with the trained gate swapped in for each member that has gates
    (``gates[i] = {module: (d_in,)}``); a gated member must have a gate for every module it adapts."""
    if not set(gates) <= set(range(len(experts))):
        raise ValueError(f"gates for unknown members {sorted(set(gates) - set(range(len(experts))))}")
    routing = {}
    for name, entry in arrow_routing_vectors(experts).items():
        rows = []
        for row, e in enumerate(entry.experts):
            if e not in gates:
                rows.append(entry.vectors[row])
                continue
            if name not in gates[e]:
                raise ValueError(f"member {e} has gates but none for {name}")
            gate = gates[e][name].detach().to("cpu", torch.float32)
            if gate.shape != (experts[e].modules[name].d_in,):
                raise ValueError(f"member {e}: gate for {name} has shape {tuple(gate.shape)}")
            rows.append(gate)
        routing[name] = ModuleRouting(list(entry.experts), torch.stack(rows))
    return Fitted(routing, [GATE if i in gates else PROTOTYPE for i in range(len(experts))])
