"""The base model: a small ``LlamaForCausalLM`` pre-trained from scratch on the generic corpus."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from zoo.demozoo.corpus import corpus_lines
from zoo.demozoo.profiles import Profile
from zoo.demozoo.skills import Skill, World
from zoo.eval.text import collate
from zoo.demozoo.training import encode_text, train

MAX_POSITIONS = 128
LINE_CHARS = 56


def make_config(profile: Profile, tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=profile.hidden, intermediate_size=profile.intermediate,
        num_hidden_layers=profile.layers, num_attention_heads=profile.heads, num_key_value_heads=profile.heads,
        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def pretrain_base(profile: Profile, tokenizer, world: World, skills: list[Skill], seed: int,
                  on_step: Callable[[int], None] | None = None) -> LlamaForCausalLM:
    """Initialise from ``seed`` and train on generic lines (never a task mapping, see ``corpus``)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(make_config(profile, tokenizer))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    lines = corpus_lines(world, skills, random.Random(f"{seed}/corpus"), LINE_CHARS)
    train(model, line_batches(tokenizer, lines, profile.pretrain_batch), profile.pretrain_steps,
          profile.pretrain_lr, on_step)
    return model


def line_batches(tokenizer, lines: Iterator[str], batch: int) -> Iterator[dict]:
    """One line per row, right-padded (packing lines into rows was measured to delay copying ability)."""
    while True:
        yield collate([encode_text(tokenizer, next(lines)) for _ in range(batch)], tokenizer.pad_token_id)
