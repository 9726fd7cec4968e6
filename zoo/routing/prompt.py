"""Where each example's prompt ends, for a forward that also holds the target (teacher forcing).

A per-example router decides from the prompt alone: at generation prefill the input *is* the prompt, but a
teacher-forced pass (target NLL, routing accuracy) feeds ``prompt target`` as one sequence, and a router
that embedded all of it would have peeked at the answer. The scoring loop declares the prompt's positions
around such a forward with :func:`prompt_positions`; the routed runtime hands a per-example router only
those positions. Nothing else reads the declaration, so it is harmless around a plain model or a per-token
router, and scoring names no router.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_DECLARED: ContextVar[torch.Tensor | None] = ContextVar("prompt_positions", default=None)


@contextmanager
def prompt_positions(mask: torch.Tensor) -> Iterator[None]:
    """Within the block, a forward's ``(B, T)`` input holds each example's prompt where ``mask`` is true."""
    token = _DECLARED.set(mask)
    try:
        yield
    finally:
        _DECLARED.reset(token)


def prompt_only(input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The forward's ``input_ids`` and ``attention_mask`` cut down to the declared prompts (unchanged when
    nothing is declared): the mask keeps only prompt tokens, and trailing columns that hold no prompt token
    are dropped (a causal model's earlier positions never see them)."""
    declared = _DECLARED.get()
    if declared is None:
        return input_ids, attention_mask
    if declared.shape != input_ids.shape:
        raise ValueError(f"prompt positions declared for inputs of shape {tuple(declared.shape)}, but the model "
                         f"got {tuple(input_ids.shape)}: declare them around the teacher-forced forward only")
    prompt = declared.to(input_ids.device).long()
    mask = prompt if attention_mask is None else attention_mask * prompt
    width = int(prompt.any(0).nonzero().max()) + 1 if prompt.any() else input_ids.shape[1]
    return input_ids[:, :width], mask[:, :width]
