"""Right-padded causal-LM batches whose labels skip the prompt: shared by every training and scoring loop.

The demo zoo (base pre-training, experts, scoring) and PHATGOOSE gate training batch text the same way,
so they use this one function rather than copies that could drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE = -100  # label of positions that carry no loss (prompt, padding): torch's cross-entropy default

TokenizedExample = tuple[list[int], int]  # token ids, number of leading tokens that carry no loss


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
