"""Greedy completion with stop rules, as the harness scores it and the served model answers.

Generation ends at ``</s>`` or once every row holds a stop string (default: a newline, as
lm-evaluation-harness's ``until``), and each completion is cut at its first stop string: a real model
that keeps talking after its answer is judged on the answer alone. Targets that hold no stop string (the
tiny zoo's) come out as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from zoo.eval.text import pad_id

STOP = ("\n",)


@torch.no_grad()
def greedy_completions(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 64,
                       stop: Sequence[str] = STOP) -> list[str]:
    """Greedy continuation of each prompt (left-padded batches through ``generate``), cut at the first of ``stop``."""
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        out: list[str] = []
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(list(prompts[start: start + batch_size]), return_tensors="pt", padding=True).to(device)
            width = enc["input_ids"].shape[1]
            criteria = StoppingCriteriaList([_StopStrings(tokenizer, stop, width)] if stop else [])
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id(tokenizer),
                                 eos_token_id=tokenizer.eos_token_id, stopping_criteria=criteria)
            out += [cut_at_stop(text, stop)
                    for text in tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)]
        return out
    finally:
        tokenizer.padding_side = side


def cut_at_stop(text: str, stop: Sequence[str] = STOP) -> str:
    """``text`` up to (without) the earliest of the ``stop`` strings it holds."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


class _StopStrings(StoppingCriteria):
    """Marks a row done once its generated text (after the prompt's ``width`` tokens) holds a stop string."""

    def __init__(self, tokenizer, stop: Sequence[str], width: int) -> None:
        self.tokenizer, self.stop, self.width = tokenizer, [s for s in stop if s], width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)
