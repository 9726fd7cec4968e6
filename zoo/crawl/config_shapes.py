"""Weight shapes of a base model from its ``config.json`` alone, for the common decoder family.

When a base's weights cannot be compared (a bitsandbytes checkpoint packs them as uint8 ``[N, 1]``)
or cannot be read (the safetensors headers of a gated repo), its config still says the shapes of the
Llama-style projections every LoRA targets: ``q_proj: (heads * head_dim, hidden)``,
``k_proj``/``v_proj: (kv_heads * head_dim, hidden)``, ``o_proj: (hidden, heads * head_dim)``,
``gate_proj``/``up_proj: (intermediate, hidden)``, ``down_proj: (hidden, intermediate)``.
"""

from __future__ import annotations

from typing import Any

LLAMA_LIKE = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo2", "granite"})


def config_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of the projections, or {} for another architecture or an incomplete config."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    if text.get("model_type", config.get("model_type")) not in LLAMA_LIKE:
        return {}
    try:
        hidden, heads = int(text["hidden_size"]), int(text["num_attention_heads"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or hidden // heads)
        inter, layers = int(text["intermediate_size"]), int(text["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        return {}
    per_layer = {
        "self_attn.q_proj": (heads * head_dim, hidden),
        "self_attn.k_proj": (kv_heads * head_dim, hidden),
        "self_attn.v_proj": (kv_heads * head_dim, hidden),
        "self_attn.o_proj": (hidden, heads * head_dim),
        "mlp.gate_proj": (inter, hidden),
        "mlp.up_proj": (inter, hidden),
        "mlp.down_proj": (hidden, inter),
    }
    return {f"model.layers.{i}.{name}.weight": shape for i in range(layers) for name, shape in per_layer.items()}


def is_quantised(config: dict[str, Any]) -> bool:
    return isinstance(config.get("quantization_config"), dict)
