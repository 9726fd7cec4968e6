"""Prompt + target as token ids, and right-padded causal-LM batches whose labels skip the prompt.

Every loop that trains or scores on (prompt, target) pairs (the demo zoo's base and experts, PHATGOOSE
gate training, NLL scoring, routing accuracy) encodes and batches through these two functions, so the
boundary between prompt and target is the same everywhere. The demo zoo's build fingerprints this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE = -100  # label of positions that carry no loss (prompt, padding): torch's cross-entropy default

TokenizedExample = tuple[list[int], int]  # token ids, number of leading tokens that carry no loss


def encode_pair(tokenizer, prompt: str, target: str) -> TokenizedExample:
    """``<s> prompt target </s>``; prompt and target are tokenized apart, so the boundary is exact."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + target_ids, len(prompt_ids)


def pad_id(tokenizer) -> int:
    """The tokenizer's padding id, or its end-of-sequence id when it has none (most causal LMs)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def collate(batch: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``labels``, each ``(B, T)``; labels ignore the prompt and the padding."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, (ids, no_loss) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, no_loss: len(ids)] = torch.tensor(ids[no_loss:])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
