"""Loading and saving: ``adapter.delta(m)`` is exactly what PEFT applies, for every config variant."""

from __future__ import annotations

import json

import pytest
import torch
from lora_testing import peft_deltas, randomise_lora, tiny_gpt2, tiny_llama
from safetensors.torch import load_file, save_file

from zoo.adapters import Adapter, InvalidAdapter, LoraFactors, UnsupportedAdapter, load_adapter

VARIANTS = {
    "list": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "patterns": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                     rank_pattern={"layers.0.self_attn.q_proj": 2, "down_proj": 6}, alpha_pattern={"v_proj": 3}),
    "rslora": dict(r=8, lora_alpha=4, target_modules=["k_proj", "up_proj"], use_rslora=True,
                   rank_pattern={"up_proj": 2}),
    "regex": dict(r=3, lora_alpha=5, target_modules=r".*\.layers\.1\..*(o_proj|gate_proj)"),
    "layers": dict(r=2, lora_alpha=16, target_modules=["q_proj", "o_proj"], layers_to_transform=[1]),
    "gpt2_fan_in_fan_out": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "c_proj"], fan_in_fan_out=True),
}


def build_peft(variant: str, seed: int = 1, **extra):
    from peft import LoraConfig, get_peft_model

    base = tiny_gpt2() if variant.startswith("gpt2") else tiny_llama()
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **VARIANTS[variant], **extra))
    randomise_lora(model, seed)
    return model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_delta_equals_peft_delta_and_merged_weight_change(variant, tmp_path):
    model = build_peft(variant)
    model.save_pretrained(tmp_path)
    adapter = load_adapter(tmp_path)
    reference = peft_deltas(model)
    assert sorted(adapter.modules) == sorted(reference)
    base_modules = dict(model.base_model.model.named_modules())
    before = {m: base_modules[m].base_layer.weight.detach().clone() for m in reference}
    model.merge_adapter()
    for name, delta in reference.items():
        assert adapter.delta(name).shape == before[name].shape
        torch.testing.assert_close(adapter.delta(name), delta, rtol=1e-5, atol=1e-6)
        merged_change = base_modules[name].base_layer.weight.detach() - before[name]
        torch.testing.assert_close(adapter.delta(name), merged_change, rtol=1e-4, atol=1e-5)
        f = adapter.modules[name]
        assert f.A.shape == (f.rank, f.d_in) and f.B.shape == (f.d_out, f.rank)


@pytest.mark.parametrize("variant", ["patterns", "rslora", "gpt2_fan_in_fan_out"])
def test_save_pretrained_round_trips_through_peft(variant, tmp_path):
    from peft import PeftModel

    build_peft(variant).save_pretrained(tmp_path / "src")
    adapter = load_adapter(tmp_path / "src")
    adapter.save_pretrained(tmp_path / "ours", base_model_name_or_path="tiny/base")
    saved = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "tiny/base"
    base = tiny_gpt2() if variant.startswith("gpt2") else tiny_llama()
    reloaded = peft_deltas(PeftModel.from_pretrained(base, tmp_path / "ours"))
    assert sorted(reloaded) == sorted(adapter.modules)
    for name, delta in reloaded.items():
        torch.testing.assert_close(delta, adapter.delta(name), rtol=1e-5, atol=1e-6)
    again = load_adapter(tmp_path / "ours")
    for name in adapter.modules:
        torch.testing.assert_close(again.delta(name), adapter.delta(name))


def test_per_module_ranks_save_with_unit_scale(tmp_path):
    from peft import PeftModel

    gen = torch.Generator().manual_seed(0)
    ranks = {"model.layers.0.self_attn.q_proj": 3, "model.layers.1.self_attn.q_proj": 5,
             "model.layers.0.mlp.down_proj": 3}
    shapes = {"model.layers.0.self_attn.q_proj": (32, 32), "model.layers.1.self_attn.q_proj": (32, 32),
              "model.layers.0.mlp.down_proj": (32, 48)}
    adapter = Adapter({m: LoraFactors(torch.randn(ranks[m], shapes[m][1], generator=gen),
                                      torch.randn(shapes[m][0], ranks[m], generator=gen)) for m in ranks})
    adapter.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(tiny_llama(), tmp_path)
    deltas = peft_deltas(reloaded)
    assert sorted(deltas) == sorted(ranks)
    for name, delta in deltas.items():
        torch.testing.assert_close(delta, adapter.delta(name))


def test_bf16_checkpoint_loads_to_float32(tmp_path):
    model = build_peft("list")
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    adapter = load_adapter(tmp_path)
    reference = peft_deltas(model)
    for name, f in adapter.modules.items():
        assert f.A.dtype == torch.float32
        torch.testing.assert_close(adapter.delta(name), reference[name].float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    ("extra", "reason_part"),
    [
        (dict(use_dora=True), "DoRA"),
        (dict(lora_bias=True), "lora_bias"),
    ],
)
def test_refuses_peft_variants_with_reason(extra, reason_part, tmp_path):
    build_peft("list", **extra).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedAdapter, match=reason_part):
        load_adapter(tmp_path)


def test_refuses_embedding_lora_even_when_the_config_looks_fine(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=2, lora_alpha=2, target_modules=["embed_tokens", "q_proj"]))
    model.save_pretrained(tmp_path)
    with pytest.raises(UnsupportedAdapter, match="embedding"):
        load_adapter(tmp_path)


def _write(folder, config: dict, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file(state, str(folder / "adapter_model.safetensors"))


CONFIG = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}
KEY = "base_model.model.model.layers.0.self_attn.q_proj"


@pytest.mark.parametrize(
    ("state", "error", "reason_part"),
    [
        ({f"{KEY}.lora_A.weight": torch.full((2, 8), float("nan")), f"{KEY}.lora_B.weight": torch.ones(8, 2)},
         InvalidAdapter, "NaN"),
        ({f"{KEY}.lora_A.weight": torch.ones(2, 8), f"{KEY}.lora_B.weight": torch.full((8, 2), float("inf"))},
         InvalidAdapter, "NaN or inf"),
        ({f"{KEY}.lora_A.weight": torch.ones(2, 8)}, InvalidAdapter, "lora_B missing"),
        ({f"{KEY}.lora_A.weight": torch.ones(3, 8), f"{KEY}.lora_B.weight": torch.ones(8, 3)},
         InvalidAdapter, "rank 3"),
        ({f"{KEY}.lora_A.weight": torch.ones(2, 8, 3, 3), f"{KEY}.lora_B.weight": torch.ones(8, 2, 1, 1)},
         UnsupportedAdapter, "convolution"),
        ({f"{KEY}.lora_A.weight": torch.ones(2, 8), f"{KEY}.lora_B.weight": torch.ones(8, 2),
          f"{KEY}.lora_magnitude_vector": torch.ones(8)}, UnsupportedAdapter, "DoRA"),
        ({"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": torch.ones(2, 8),
          "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight": torch.ones(8, 2)},
         InvalidAdapter, "target_modules"),
        ({"lora_unet_down.lora_down.weight": torch.ones(2, 8)}, UnsupportedAdapter, "not a PEFT LoRA weight"),
        ({}, InvalidAdapter, "no LoRA weights"),
    ],
)
def test_malformed_weights_are_refused_with_reason(state, error, reason_part, tmp_path):
    _write(tmp_path, CONFIG, state)
    with pytest.raises(error, match=reason_part):
        load_adapter(tmp_path)


def test_keys_with_adapter_name_and_file_path_load(tmp_path):
    a, b = torch.randn(2, 8), torch.randn(8, 2)
    _write(tmp_path, CONFIG, {f"{KEY}.lora_A.default.weight": a, f"{KEY}.lora_B.default.weight": b})
    adapter = load_adapter(tmp_path / "adapter_model.safetensors")
    torch.testing.assert_close(adapter.delta("model.layers.0.self_attn.q_proj"), 2.0 * b @ a)


def test_pickle_only_and_missing_files_are_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(InvalidAdapter, match=r"adapter_model\.safetensors missing"):
        load_adapter(tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04not opened")
    with pytest.raises(UnsupportedAdapter, match="safetensors"):
        load_adapter(tmp_path)
    with pytest.raises(InvalidAdapter, match="no adapter at"):
        load_adapter(tmp_path / "elsewhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidAdapter, match=r"adapter_config\.json missing"):
        load_adapter(tmp_path / "empty")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InvalidAdapter, match="safetensors"):
        load_adapter(tmp_path)


def test_saved_weights_are_plain_peft_keys(tmp_path):
    a, b = torch.randn(2, 8), torch.randn(8, 2)
    adapter = Adapter({"model.layers.0.self_attn.q_proj": LoraFactors(a, b)}, base_model_name_or_path="x")
    adapter.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert sorted(state) == [f"{KEY}.lora_A.weight", f"{KEY}.lora_B.weight"]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (2, 2, False)


def test_check_fits_compares_deltas_with_the_base_weights(tmp_path):
    model = build_peft("gpt2_fan_in_fan_out")
    model.save_pretrained(tmp_path)
    adapter = load_adapter(tmp_path)
    shapes = {name: tuple(m.weight.shape) for name, m in tiny_gpt2().named_modules() if hasattr(m, "weight")}
    adapter.check_fits(shapes)
    name = next(iter(adapter.modules))
    with pytest.raises(InvalidAdapter, match="base weight is"):
        adapter.check_fits({**shapes, name: (7, 7)})
    with pytest.raises(InvalidAdapter, match="no such module"):
        adapter.check_fits({k: v for k, v in shapes.items() if k != name})
