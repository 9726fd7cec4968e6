"""Helpers shared by the adapter-algebra tests: random factors, tiny base models and PEFT references."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.adapters import Adapter, LoraFactors

SHAPES = {"layers.0.q": (12, 10), "layers.0.up": (16, 10), "layers.1.q": (12, 10)}


def random_factors(d_out: int, d_in: int, rank: int, gen: torch.Generator, dtype=torch.float64) -> LoraFactors:
    return LoraFactors(A=torch.randn(rank, d_in, generator=gen, dtype=dtype),
                       B=torch.randn(d_out, rank, generator=gen, dtype=dtype))


def random_adapter(
    seed: int, rank: int | Mapping[str, int] = 3, shapes: Mapping[str, tuple[int, int]] = SHAPES,
    dtype=torch.float64,
) -> Adapter:
    gen = torch.Generator().manual_seed(seed)
    ranks = rank if isinstance(rank, Mapping) else dict.fromkeys(shapes, rank)
    return Adapter({m: random_factors(*shape, ranks[m], gen, dtype) for m, shape in shapes.items()})


def gauge_rotated(adapter: Adapter, seed: int) -> Adapter:
    """``A' = R A, B' = B R^-1`` with a random well-conditioned ``R`` per module: the same updates."""
    gen = torch.Generator().manual_seed(seed)
    modules = {}
    for name, f in adapter.modules.items():
        r = torch.randn(f.rank, f.rank, generator=gen, dtype=f.A.dtype) + 3 * torch.eye(f.rank, dtype=f.A.dtype)
        modules[name] = LoraFactors(A=r @ f.A, B=f.B @ torch.linalg.inv(r))
    return adapter.with_modules(modules)


def dense(adapter: Adapter) -> dict[str, torch.Tensor]:
    return {m: f.delta() for m, f in adapter.modules.items()}


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=64, max_position_embeddings=64)
    return LlamaForCausalLM(config)


def tiny_gpt2(seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=64))


def randomise_lora(peft_model, seed: int) -> None:
    """PEFT initialises lora_B to zero; give every LoRA weight random values so deltas are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)


def peft_deltas(peft_model, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """``{module name: PEFT's own get_delta_weight}`` for every LoRA layer of a PeftModel."""
    from peft.tuners.lora import LoraLayer

    return {
        name: module.get_delta_weight(adapter_name).detach()
        for name, module in peft_model.base_model.model.named_modules()
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A
    }
