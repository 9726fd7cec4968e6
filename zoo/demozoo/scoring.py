"""Scoring a causal LM on task examples: mean target NLL and exact match of greedy generation.

Works with any ``transformers`` causal LM and tokenizer (plain, ``PeftModel``, a routed wrapper),
so the evaluation harness and the tests score every candidate the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from zoo.demozoo.tasks import Example
from zoo.batching import IGNORE, collate
from zoo.demozoo.training import encode_pair


def _fields(example: Example | Mapping) -> tuple[str, str]:
    if isinstance(example, Mapping):
        return example["prompt"], example["target"]
    return example.prompt, example.target


@torch.no_grad()
def target_nll(model, tokenizer, examples: Sequence[Example | Mapping], batch_size: int = 64) -> list[float]:
    """Per example, the mean NLL (nats per token) of ``target </s>`` given ``<s> prompt``."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        batch = collate([encode_pair(tokenizer, *_fields(e)) for e in examples[start: start + batch_size]], pad)
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        gold = labels[:, 1:].to(device)
        keep = gold != IGNORE
        token_nll = -logp.gather(-1, gold.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
        out += (token_nll.sum(1) / keep.sum(1)).tolist()
    return out


@torch.no_grad()
def greedy_completions(model, tokenizer, prompts: Sequence[str], max_new_tokens: int,
                       batch_size: int = 64) -> list[str]:
    """Greedy continuations up to ``</s>`` (left-padded batches through ``generate``)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        out: list[str] = []
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(list(prompts[start: start + batch_size]), return_tensors="pt", padding=True).to(device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out
    finally:
        tokenizer.padding_side = side


def score_model(model, tokenizer, examples: Sequence[Example | Mapping], batch_size: int = 64,
                generate: bool = True) -> dict[str, float]:
    """``{"nll": mean target NLL, "exact_match": fraction of greedy completions equal to the target, "n": count}``.

    ``generate=False`` skips generation (``exact_match`` is then NaN), for callers that only need NLL.
    """
    examples = list(examples)
    if not examples:
        return {"nll": float("nan"), "exact_match": float("nan"), "n": 0}
    was_training = model.training
    model.eval()
    try:
        nll = target_nll(model, tokenizer, examples, batch_size)
        em = float("nan")
        if generate:
            pairs = [_fields(e) for e in examples]
            longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for _, t in pairs)
            outputs = greedy_completions(model, tokenizer, [p for p, _ in pairs], longest + 2, batch_size)
            em = sum(o.strip() == t.strip() for o, (_, t) in zip(outputs, pairs)) / len(pairs)
        return {"nll": sum(nll) / len(nll), "exact_match": em, "n": len(examples)}
    finally:
        model.train(was_training)
