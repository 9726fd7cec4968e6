"""Scoring a causal LM on task examples: per-example target NLL and greedy completion, then every metric.

Works with any ``transformers`` causal LM and tokenizer (plain, ``PeftModel``, a routed wrapper), so the
harness, the demo zoo's report and the tests score every candidate the same way. The model runs once
per example for each of the two; the registered metrics (``zoo.eval.metrics``) only read the results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from zoo.eval.generation import greedy_completions
from zoo.eval.metrics import METRICS, ExampleResult
from zoo.eval.text import IGNORE, collate, encode_pair, pad_id
from zoo.routing.prompt import prompt_positions

GENERATION_SLACK = 2  # tokens allowed beyond the longest target, so a near miss is still seen as one


def _fields(example: Any) -> tuple[str, str]:
    if isinstance(example, Mapping):
        return example["prompt"], example["target"]
    return example.prompt, example.target


def prompt_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, T)``, true on the prompt's tokens of a ``collate`` d batch: attended, but carrying no loss."""
    return batch["attention_mask"].bool() & (batch["labels"] == IGNORE)


@torch.no_grad()
def target_nll(model, tokenizer, examples: Sequence[Any], batch_size: int = 64) -> list[float]:
    """Per example, the mean NLL (nats per token) of ``target </s>`` given ``<s> prompt``.

    The forward holds prompt and target, so it declares where each prompt ends: a per-example router then
    decides on the prompt alone, as at generation prefill, and the NLL is that of the experts it would
    answer with (not of experts chosen by looking at the answer)."""
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        pairs = [encode_pair(tokenizer, *_fields(e)) for e in examples[start: start + batch_size]]
        batch = collate(pairs, pad_id(tokenizer))
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        # Logits only from the first position that predicts a target token on: the output layer (a fifth of a
        # small model's weights) and the softmax over the vocabulary are then not spent on the prompts.
        first = int((labels[:, 1:] != IGNORE).int().argmax(1).min())
        with prompt_positions(prompt_mask(batch)):  # a per-example router decides on the prompt, as in generation
            keep = ids.shape[1] - first
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           logits_to_keep=keep).logits[:, -keep:].float()  # a model may ignore logits_to_keep
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        gold = labels[:, first + 1:].to(device)
        scored = gold != IGNORE
        token_nll = -logp.gather(-1, gold.clamp(min=0).unsqueeze(-1)).squeeze(-1) * scored
        out += (token_nll.sum(1) / scored.sum(1)).tolist()
    return out


def score_examples(model, tokenizer, examples: Sequence[Any], batch_size: int = 64,
                   generate: bool = True) -> list[ExampleResult]:
    """Each example's target NLL and (with ``generate``) greedy completion, the model in eval mode meanwhile."""
    examples = list(examples)
    if not examples:
        return []
    pairs = [_fields(e) for e in examples]
    was_training = model.training
    model.eval()
    try:
        nll = target_nll(model, tokenizer, examples, batch_size)
        completions: list[str | None] = [None] * len(pairs)
        if generate:
            longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for _, t in pairs)
            completions = greedy_completions(model, tokenizer, [p for p, _ in pairs], longest + GENERATION_SLACK,
                                             batch_size)
    finally:
        model.train(was_training)
    return [ExampleResult(p, t, c, n) for (p, t), c, n in zip(pairs, completions, nll, strict=True)]


def compute_metrics(results: Sequence[ExampleResult]) -> dict[str, float]:
    """Every registered metric of one task's results (NaN where a metric is undefined, e.g. no examples)."""
    return {name: float(metric.compute(results)) for name, metric in METRICS.items()}


def score_model(model, tokenizer, examples: Sequence[Any], batch_size: int = 64,
                generate: bool = True) -> dict[str, float]:
    """Every metric of ``examples`` and their count ``n``; ``generate=False`` skips generation (metrics that
    need completions, such as ``exact_match``, are then NaN), for callers that only need the NLL."""
    results = score_examples(model, tokenizer, examples, batch_size, generate)
    return {**compute_metrics(results), "n": len(results)}
