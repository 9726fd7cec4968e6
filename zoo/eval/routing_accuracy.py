"""Routing accuracy: does a routed candidate send a task's tokens to experts of the task's skill?

Each example (``<s> prompt target </s>``, teacher-forced, as the NLL sees it) is run once with the
routing recorder on. Per routed layer and token the top-1 expert counts, on the layers where some member
of the task's skill (family) adapts the module: elsewhere no pick could be right, and counting those
layers would cap each task's score at a different share of its layers. ``chance`` is what picking
uniformly among the layer's experts would score, over the same layers. "Target tokens" are the positions
holding the target and ``</s>``. Reporting prompt-and-target tokens, target tokens only and a per-sequence
vote side by side shows whether routing fails per token or per example.

A per-example router is also scored on its own decisions, one per example (made on the prompt alone, as at
generation): is the expert it weighs most labelled with the example's task, skill, family?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from zoo.eval.results import RoutingScore
from zoo.eval.scoring import prompt_mask
from zoo.eval.suite import EvalExample
from zoo.eval.text import collate, encode_pair, pad_id
from zoo.routing.prompt import prompt_positions
from zoo.routing.router import ExampleDecision


@torch.no_grad()
def routing_score(model: torch.nn.Module, handle: Any, tokenizer: Any, examples: Sequence[EvalExample],
                  member_labels: Sequence[Mapping[str, str]], batch_size: int = 64) -> RoutingScore:
    """Routing accuracy of one task's ``examples``; ``member_labels[i]`` labels library member ``i``."""
    skill, family, task = examples[0].skill, examples[0].family, examples[0].task
    skills = [m.get("skill") for m in member_labels]
    families = [m.get("family") for m in member_labels]
    has_skill, has_family = skill is not None and skill in skills, family is not None and family in families
    has_task = task in [m.get("task") for m in member_labels]
    is_skill = torch.tensor([s == skill for s in skills])
    is_family = torch.tensor([f == family for f in families])
    is_task = torch.tensor([m.get("task") == task for m in member_labels])
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    hits = {"skill": 0.0, "family": 0.0, "target_skill": 0.0}
    counts = {"skill": 0, "family": 0, "target_skill": 0}
    tokens = 0
    sequence_hits, chance_sum, chance_n = 0, 0.0, 0
    example_hits = {"task": 0, "skill": 0, "family": 0, "fallback": 0}
    decided = 0
    top1_counts = torch.zeros(len(member_labels))
    for start in range(0, len(examples), batch_size):
        pairs = [encode_pair(tokenizer, e.prompt, e.target) for e in examples[start:start + batch_size]]
        batch = collate(pairs, pad)
        valid = batch["attention_mask"].bool()
        target = valid & (torch.arange(valid.shape[1])[None, :] >= torch.tensor([n for _, n in pairs])[:, None])
        with handle.recording() as recorder, prompt_positions(prompt_mask(batch)):
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
        mass = torch.zeros(valid.shape[0], len(member_labels))
        for name, records in recorder.records.items():
            experts, weights = records[-1].experts.cpu(), records[-1].weights.cpu()  # (B, T, k) each
            top1 = experts[..., 0]
            top1_counts += torch.bincount(top1[valid], minlength=len(member_labels)).float()
            tokens += int(valid.sum())
            mass.scatter_add_(1, experts.flatten(1), (weights * valid[..., None]).flatten(1))
            layer_experts = handle.layers[name].experts.cpu()
            skill_here, family_here = is_skill[layer_experts], is_family[layer_experts]
            for key, labels, here, where in (("skill", is_skill, skill_here, valid),
                                             ("family", is_family, family_here, valid),
                                             ("target_skill", is_skill, skill_here, target)):
                if here.any():  # some pick here could be right
                    hits[key] += float(labels[top1][where].sum())
                    counts[key] += int(where.sum())
            if skill_here.any():
                chance_sum += float(skill_here.float().mean())
                chance_n += 1
        sequence_hits += int(is_skill[mass.argmax(dim=1)].sum())
        for decision in recorder.examples:  # a per-example router's decisions (none from a per-token one)
            decided += decision.experts.shape[0]
            for key, n in _top_expert_hits(decision, {"task": is_task, "skill": is_skill, "family": is_family}).items():
                example_hits[key] += n

    def fraction(key: str, known: bool) -> float | None:
        return hits[key] / counts[key] if known and counts[key] else None

    def per_example(key: str, known: bool) -> float | None:
        return example_hits[key] / decided if known and decided else None

    return RoutingScore(
        task=examples[0].task, split=examples[0].split, tokens=tokens,
        skill=fraction("skill", has_skill), family=fraction("family", has_family),
        target_skill=fraction("target_skill", has_skill),
        sequence_skill=sequence_hits / len(examples) if has_skill else None,
        chance_skill=chance_sum / chance_n if has_skill and chance_n else None,
        expert_share=(top1_counts / top1_counts.sum().clamp_min(1)).tolist(),
        example_task=per_example("task", has_task), example_skill=per_example("skill", has_skill),
        example_family=per_example("family", has_family), example_fallback=per_example("fallback", True),
    )


def _top_expert_hits(decision: ExampleDecision, labelled: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Per label, how many examples' top expert (most weight) carries it; ``fallback``: how many examples the
    router chose no expert for (they count as misses under every label)."""
    experts, weights = decision.experts.cpu(), decision.weights.cpu().float()
    members = len(next(iter(labelled.values())))
    top = torch.zeros(experts.shape[0], members).scatter_add_(1, experts, weights).argmax(dim=1)
    fell_back = torch.zeros(len(top), dtype=torch.bool) if decision.fallback is None else decision.fallback.cpu()
    return {**{key: int((is_label[top] & ~fell_back).sum()) for key, is_label in labelled.items()},
            "fallback": int(fell_back.sum())}
