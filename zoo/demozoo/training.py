"""The one training loop the zoo uses, for the base (all tokens) and for experts (completion tokens only)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import torch

from zoo.eval.text import TokenizedExample, collate, encode_pair
from zoo.demozoo.tasks import Example

DECAY = 0.3


def encode_example(tokenizer, example: Example) -> TokenizedExample:
    return encode_pair(tokenizer, example.prompt, example.target)


def encode_text(tokenizer, text: str) -> TokenizedExample:
    """A pre-training line: every token after ``<s>`` carries loss."""
    return tokenizer(text)["input_ids"] + [tokenizer.eos_token_id], 1


def sample_batches(data: Sequence[TokenizedExample], batch: int, rng: random.Random, pad_id: int) -> Iterable[dict]:
    """Endless batches drawn without replacement within an epoch, reshuffled every epoch."""
    order: list[int] = []
    while True:
        if len(order) < batch:
            fresh = list(range(len(data)))
            rng.shuffle(fresh)
            order += fresh
        picked, order = order[:batch], order[batch:]
        yield collate([data[i] for i in picked], pad_id)


def lm_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def train(model: torch.nn.Module, batches: Iterable[dict], steps: int, lr: float,
          on_step: Callable[[int], None] | None = None,
          loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor] = lm_loss) -> None:
    """AdamW, warm-up / constant / linear decay over the last ``DECAY`` of the steps; leaves the model in eval mode.

    Short runs need the warm-up, and the long constant phase matters: the base learns to copy from
    its context abruptly, at a point that a cosine decay reached with too small a learning rate.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    warmup, decay = max(1, steps // 10), max(1, int(steps * DECAY))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup, (steps - s) / decay))
    model.train()
    for step, batch in zip(range(steps), batches):
        loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if on_step:
            on_step(step)
    model.eval()
