"""Prompt-centroid routing: one decision per prompt, from where the prompt sits among the experts' own prompts.

Each expert's embedding is the centroid of its training prompts in the base model's representation: the
mean over a prompt's tokens of the hidden state after decoder layer ``layer``, whitened (ZCA) over every
expert's prompts, so that no direction the prompts all share dominates the distances. A new prompt is
embedded the same way at prefill; its distance to each centroid (Euclidean, divided by ``sqrt(d)``) picks
the ``top_k`` nearest experts with kernel weights ``exp(-dist / beta)`` renormalised over the kept ones
(``top_k = 1`` is plain retrieval), as test-time model merging does. The runtime keeps the decision
through decoding; mixing the chosen experts' outputs per example is exactly merging their updates for it.

Confidence: the threshold is ``margin`` times the ``quantile`` of the distances of the experts' own
training prompts to their own centroid (each left out of its centroid: in-sample distances are too short);
a prompt farther than that from every centroid is unfamiliar and gets the uniform
mixture of all members, which is the uniform merge of the library, so on prompts no expert knows the
library does what that merge does. Members whose training data is unknown are left out of retrieval
(``routed_by`` says so) and take part only in that fallback.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.adapters.factors import Adapter, module_owners
from zoo.routing.router import ExampleDecision, FitData, Fitted, Router
from zoo.routing.vectors import ModuleRouting

EMBEDDED = "prompt-centroid"
LEFT_OUT = "left-out: no training data"


@dataclass(frozen=True)
class PromptCentroidConfig:
    """``layer``: the decoder layer whose output embeds a prompt (clamped to the model's depth); ``beta``: the
    kernel's temperature on distances; ``fallback``: unfamiliar prompts get the uniform mixture."""

    top_k: int = 1
    beta: float = 0.1
    layer: int = 8
    fallback: bool = True

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.layer < 1 or not self.beta > 0:
            raise ValueError(f"top_k and layer must be at least 1 and beta positive, got {self}")


@dataclass(frozen=True)
class PromptCentroidFit:
    """How many training prompts per expert are embedded, the whitening's ridge (relative to the mean
    variance), and the quantile of the experts' own distances and the margin over it that set the
    confidence threshold."""

    examples_per_expert: int = 64
    ridge: float = 1e-2
    quantile: float = 0.99
    margin: float = 2.0
    batch_size: int = 32
    seed: int = 0


class _Embedded(Exception):
    """Raised by the hook after the chosen layer: the rest of the model need not run to embed a prompt."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of decoder layers (``model.layers`` in Llama-style models, ``transformer.h`` in GPT-2)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and (name.endswith("layers") or name.endswith(".h")):
            return module
    raise ValueError(f"{type(model).__name__} has no decoder layer stack to embed prompts with")


@torch.no_grad()
def prompt_embeddings(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      layer: int) -> torch.Tensor:
    """``(B, T)`` prompts -> ``(B, d)``: the mean over each prompt's tokens of decoder layer ``layer``'s output.

    Positions count from each prompt's first token, as ``generate`` counts them, so a left-padded prompt
    embeds as it does alone, also in models with absolute position embeddings."""
    layers = decoder_layers(model)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    chosen = layers[min(layer, len(layers)) - 1]

    def stop(module: nn.Module, inputs: Any, output: Any) -> None:
        raise _Embedded(output[0] if isinstance(output, tuple) else output)

    hook = chosen.register_forward_hook(stop)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False)
        raise RuntimeError("the model finished without running the chosen layer")
    except _Embedded as embedded:
        hidden = embedded.hidden.float()
    finally:
        hook.remove()
    mask = mask.to(hidden.device, hidden.dtype)[..., None]
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def _embed_texts(model: nn.Module, tokenizer: Any, prompts: Sequence[str], layer: int, batch: int) -> torch.Tensor:
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch):
        enc = tokenizer(list(prompts[start:start + batch]), return_tensors="pt", padding=True)
        out.append(prompt_embeddings(model, enc["input_ids"].to(device), enc["attention_mask"].to(device), layer))
    return torch.cat(out).cpu()


class PromptCentroidRouter(Router):
    name = "prompt_centroid"
    reference = ("Ostapenko et al. 2024 and the MoErging survey (Yadav et al. 2024): example-level routing by "
                 "expert embeddings from training samples; Lu et al. 2024, test-time model merging (kernel weights)")
    config_class = PromptCentroidConfig
    fit_class = PromptCentroidFit
    per_example = True

    def fit(self, experts: Sequence[Adapter], config: PromptCentroidConfig, fit_config: PromptCentroidFit,
            data: FitData | None) -> Fitted:
        samples = {i: _sample(data.examples(i), fit_config) for i in range(len(experts))} if data else {}
        samples = {i: prompts for i, prompts in samples.items() if prompts}
        # per-module vectors are not used: the decision is the model's, made once per prompt
        routing = {name: ModuleRouting(owners, torch.zeros(len(owners), 0))
                   for name, owners in module_owners(experts).items()}
        routed_by = [EMBEDDED if i in samples else LEFT_OUT for i in range(len(experts))]
        size = {"members": torch.tensor(len(experts))}
        if not samples:  # nothing to retrieve by: every prompt gets the uniform mixture
            return Fitted(routing, routed_by, size)
        model, tokenizer = data.base_model()
        embedded = {i: _embed_texts(model, tokenizer, p, config.layer, fit_config.batch_size)
                    for i, p in samples.items()}
        pooled = torch.cat(list(embedded.values())).double()
        mean = pooled.mean(0)
        covariance = torch.cov(pooled.T) if len(pooled) > 1 else torch.zeros(len(mean), len(mean), dtype=pooled.dtype)
        ridge = fit_config.ridge * covariance.diagonal().mean().clamp_min(1e-12)
        values, vectors = torch.linalg.eigh(covariance + ridge * torch.eye(len(mean), dtype=pooled.dtype))
        whiten = vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T
        centroids = torch.full((len(experts), len(mean)), float("nan"), dtype=torch.float64)
        own = []
        for i, x in embedded.items():
            z = (x.double() - mean) @ whiten
            centroids[i] = z.mean(0)
            left_out = len(z) / max(len(z) - 1, 1)  # a point's distance to the mean of the others
            own.append(left_out * (z - centroids[i]).norm(dim=-1) / len(mean) ** 0.5)
        threshold = fit_config.margin * torch.quantile(torch.cat(own), fit_config.quantile)
        state = {**size, "mean": mean.float(), "whiten": whiten.float(), "centroids": centroids.float(),
                 "threshold": threshold.float()}
        return Fitted(routing, routed_by, state)

    def decide(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               state: Mapping[str, torch.Tensor], config: PromptCentroidConfig) -> ExampleDecision:
        batch, device = input_ids.shape[0], input_ids.device
        members = int(state["members"])
        every = torch.arange(members, device=device).expand(batch, members)
        if "centroids" not in state:  # fitted without any expert's data: the uniform mixture for everyone
            return ExampleDecision(every, torch.full((batch, members), 1.0 / members, device=device),
                                   torch.ones(batch, dtype=torch.bool, device=device))
        x = prompt_embeddings(model, input_ids, attention_mask, config.layer)
        mean, whiten, centroids = (state[k].to(x.device) for k in ("mean", "whiten", "centroids"))
        z = (x - mean) @ whiten
        dist = torch.cdist(z, torch.nan_to_num(centroids)) / z.shape[-1] ** 0.5
        dist = torch.where(torch.isnan(centroids[:, 0])[None, :], torch.inf, dist)  # left-out members
        k = min(config.top_k, int((~torch.isnan(centroids[:, 0])).sum()))
        kept, chosen = dist.topk(k, dim=-1, largest=False)
        weights = (-kept / config.beta).softmax(dim=-1)
        unfamiliar = (kept[:, 0] > state["threshold"].to(x.device)) & config.fallback
        if not unfamiliar.any():
            return ExampleDecision(chosen, weights, unfamiliar)
        spread = torch.zeros(batch, members, device=x.device).scatter(1, chosen, weights)
        return ExampleDecision(every, torch.where(unfamiliar[:, None], 1.0 / members, spread), unfamiliar)


def _sample(pairs: Sequence[tuple[str, str]], fit: PromptCentroidFit) -> list[str]:
    prompts = [p for p, _ in pairs]
    if len(prompts) > fit.examples_per_expert:
        prompts = random.Random(fit.seed).sample(prompts, fit.examples_per_expert)
    return prompts
