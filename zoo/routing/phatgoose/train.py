"""PHATGOOSE gate training: learn each expert's gate vectors post hoc, base and expert frozen.

For an example of expert ``e`` every adapted module computes ``W0 h + sigmoid(<g_e, h>) B_e A_e h``; only
the gates ``g_e`` (one ``(d_in,)`` vector per expert and module, initialised to zero) are trained, on the
expert's own data. Many experts are trained in one pass over one loaded base model: each batch holds
examples of every expert, and a per-example expert index selects whose factors and gate apply.

The loss is the *sum over experts* of each expert's mean token loss. Expert ``e``'s gates then receive
exactly the gradient they would get if ``e`` were trained alone on the same examples, so training
together is training separately, minus the reloading.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.eval.text import IGNORE, TokenizedExample, collate, encode_pair
from zoo.routing.dispatch import StackedLora
from zoo.routing.model import replace_module


@dataclass(frozen=True)
class GateTrainingConfig:
    """``examples_per_expert`` per step; ``micro_batch`` caps the sequences per forward (gradients accumulate)."""

    steps: int = 100
    lr: float = 5e-3
    examples_per_expert: int = 4
    micro_batch: int = 64
    seed: int = 0


@dataclass
class GateTrainingResult:
    """``gates[e][module]: (d_in,)`` float32 on CPU for every expert with data; ``losses[t]``: the mean over
    experts of their mean token loss at step ``t``."""

    gates: dict[int, dict[str, torch.Tensor]]
    losses: list[float] = field(default_factory=list)


@dataclass
class _ExampleExperts:
    """Shared by the gated layers: the library index of each example's expert in the current batch ``(B,)``."""

    index: torch.Tensor | None = None


class GatedExpertsLinear(nn.Module):
    """``base(x) + sigmoid(<g_e, x>) B_e A_e x`` with ``e`` the expert of the token's example.

    ``expert_ids`` are the library indices of the module's experts, one row of ``gates: (E, d_in)`` each
    (trainable, zero-initialised); ``local: (num_library_experts,)`` maps a library index
    to this module's expert row, or -1 where that expert does not adapt the module (no delta).
    """

    def __init__(self, base: nn.Module, adapters: Sequence[Adapter], experts: Sequence[int], name: str,
                 example_experts: _ExampleExperts) -> None:
        super().__init__()
        weight = base.weight
        self.base = base
        self.expert_ids = list(experts)
        self.lora = StackedLora([adapters[e].modules[name] for e in experts], weight.device, weight.dtype)
        self.gates = nn.Parameter(torch.zeros(len(experts), adapters[experts[0]].modules[name].d_in,
                                              device=weight.device))
        local = torch.full((len(adapters),), -1, dtype=torch.long)
        local[list(experts)] = torch.arange(len(experts))
        self.register_buffer("local", local.to(weight.device), persistent=False)
        self.example_experts = example_experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, T, d_in)`` -> ``(B, T, d_out)``."""
        out = self.base(x)
        batch, seq = x.shape[:2]
        h = x.reshape(-1, x.shape[-1])
        local = self.local[self.example_experts.index].repeat_interleave(seq)
        token = torch.nonzero(local >= 0).squeeze(1)
        expert = local[token]
        gate = torch.sigmoid((h.index_select(0, token).float() * self.gates[expert]).sum(-1))
        delta = self.lora.delta(h, token, expert, gate)
        return out + delta.reshape(batch, seq, -1).to(out.dtype)


def train_phatgoose_gates(
    model: nn.Module,
    experts: Sequence[Adapter],
    data: Mapping[int, Sequence[TokenizedExample]],
    pad_id: int,
    config: GateTrainingConfig | None = None,
) -> GateTrainingResult:
    """Train the gates of every expert that has ``data`` (library index -> examples) on one loaded ``model``.

    The model is left exactly as it was: its modules are restored and no base or expert weight changes.
    Experts without data get no gates (the library routes them by their Arrow prototype instead).
    """
    config = config or GateTrainingConfig()
    trained = sorted(e for e, examples in data.items() if examples)
    if not trained:
        raise ValueError("no expert has training data")
    device = next(model.parameters()).device
    samplers = {e: _sampler(data[e], random.Random(config.seed * 1_000_003 + e)) for e in trained}
    result = GateTrainingResult(gates={e: {} for e in trained})
    with _gated(model, experts, trained) as (layers, example_experts):
        params = [layer.gates for layer in layers.values()]
        optimizer = torch.optim.Adam(params, lr=config.lr)
        for _ in range(config.steps):
            batch = [(e, next(samplers[e])) for e in trained for _ in range(config.examples_per_expert)]
            result.losses.append(_step(model, batch, trained, example_experts, pad_id, config.micro_batch, device))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        for name, layer in layers.items():
            for row, e in enumerate(layer.expert_ids):
                result.gates[e][name] = layer.gates[row].detach().float().cpu()
    return result


def _step(model: nn.Module, batch: list[tuple[int, TokenizedExample]], trained: list[int],
          example_experts: _ExampleExperts, pad_id: int, micro_batch: int, device: torch.device) -> float:
    """Accumulate the gradient of ``sum_e mean-token-loss_e`` over micro-batches; return its mean over experts."""
    counts = dict.fromkeys(trained, 0)
    for e, (ids, no_loss) in batch:
        counts[e] += len(ids) - max(no_loss, 1)
    total = 0.0
    for start in range(0, len(batch), micro_batch):
        chunk = batch[start:start + micro_batch]
        tensors = collate([x for _, x in chunk], pad_id)
        input_ids, attention, labels = (tensors[k].to(device) for k in ("input_ids", "attention_mask", "labels"))
        example_experts.index = torch.tensor([e for e, _ in chunk], device=device)
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
        target = labels[:, 1:]
        token_loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                     ignore_index=IGNORE, reduction="none").reshape(target.shape)
        weight = torch.tensor([1.0 / max(counts[e], 1) for e, _ in chunk], device=device)
        loss = (token_loss.sum(1) * weight).sum()
        loss.backward()
        total += float(loss.detach())
    return total / len(trained)


def _sampler(examples: Sequence[TokenizedExample], rng: random.Random) -> Iterator[TokenizedExample]:
    """Endless draws without replacement within an epoch, reshuffled every epoch."""
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in order:
            yield examples[i]


@contextmanager
def _gated(model: nn.Module, experts: Sequence[Adapter], trained: list[int]):
    """Freeze the model, swap in gated layers for the modules the trained experts adapt, restore on exit."""
    owners: dict[str, list[int]] = {}
    for e in trained:
        for name in experts[e].modules:
            owners.setdefault(name, []).append(e)
    example_experts = _ExampleExperts()
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    layers: dict[str, GatedExpertsLinear] = {}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for name, owner in owners.items():
            layers[name] = GatedExpertsLinear(model.get_submodule(name), experts, owner, name, example_experts)
            replace_module(model, name, layers[name])
        model.eval()  # the base is frozen: no dropout, the gates see the model used at inference
        yield layers, example_experts
    finally:
        for name, layer in layers.items():
            replace_module(model, name, layer.base)
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad[name])
        model.train(was_training)



def train_gates(model: nn.Module, tokenizer: Any, experts: Sequence[Adapter],
                examples: Mapping[int, Sequence[tuple[str, str]]], config: GateTrainingConfig,
                ) -> dict[int, dict[str, torch.Tensor]]:
    """Gates of every member with ``examples`` (member index -> (prompt, target) pairs), text encoded as the
    harness scores it; ``{}`` when no member has any."""
    data = {i: [encode_pair(tokenizer, p, t) for p, t in pairs] for i, pairs in examples.items() if pairs}
    if not data:
        return {}
    return train_phatgoose_gates(model, list(experts), data, pad_id=tokenizer.pad_token_id, config=config).gates
