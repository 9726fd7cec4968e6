"""Config normalisation: PEFT's own pattern/target matching, refusals with reasons, and no torch import."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from zoo.adapters import (
    AdapterError,
    InvalidAdapter,
    UnsupportedAdapter,
    check_adapter_config,
    parse_adapter_config,
)

BASE = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}


def config(**changes):
    return parse_adapter_config({**BASE, **changes})


def test_importing_config_parsing_does_not_import_torch():
    code = "import sys, zoo.adapters as z; z.parse_adapter_config({'peft_type':'LORA','r':1,'lora_alpha':1}); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_defaults_and_scale():
    c = config()
    assert (c.r, c.lora_alpha, c.bias, c.fan_in_fan_out, c.use_rslora) == (8, 16.0, "none", False, False)
    assert c.scale_for("model.layers.0.self_attn.q_proj") == 2.0
    assert config(use_rslora=True).scale_for("x.q_proj") == pytest.approx(16 / math.sqrt(8))


def test_rank_and_alpha_patterns_match_like_peft():
    from peft.utils.other import get_pattern_key

    patterns = {"layers.0.self_attn.q_proj": 2, "v_proj": 4, r"layers\.1\d\..*q_proj": 6}
    c = config(rank_pattern=patterns, alpha_pattern={"q_proj": 3})
    names = ["model.layers.0.self_attn.q_proj", "model.layers.10.self_attn.q_proj", "model.layers.2.self_attn.q_proj",
             "model.layers.3.self_attn.v_proj", "model.layers.3.self_attn.k_proj", "model.layers.12.self_attn.q_proj"]
    for name in names:
        assert c.rank_for(name) == patterns.get(get_pattern_key(patterns.keys(), name), 8), name
    assert c.rank_for("model.layers.0.self_attn.q_proj") == 2
    assert c.rank_for("model.layers.10.self_attn.q_proj") == 6
    assert c.alpha_for("model.layers.0.self_attn.q_proj") == 3
    assert c.scale_for("model.layers.0.self_attn.q_proj") == 1.5
    assert c.scale_for("model.layers.3.self_attn.v_proj") == 4.0


@pytest.mark.parametrize(
    ("changes", "name", "expected"),
    [
        ({}, "model.layers.0.self_attn.q_proj", True),
        ({}, "model.layers.0.self_attn.k_proj", False),
        ({}, "q_proj", True),
        ({"target_modules": r".*\.(q|o)_proj"}, "model.layers.0.self_attn.o_proj", True),
        ({"target_modules": r".*\.(q|o)_proj"}, "model.layers.0.self_attn.v_proj", False),
        ({"layers_to_transform": [1]}, "model.layers.1.self_attn.q_proj", True),
        ({"layers_to_transform": [1]}, "model.layers.0.self_attn.q_proj", False),
        ({"layers_to_transform": 0, "layers_pattern": "h"}, "transformer.h.0.attn.q_proj", True),
        ({"exclude_modules": ["layers.0.self_attn.q_proj"]}, "model.layers.0.self_attn.q_proj", False),
    ],
)
def test_targets_agree_with_peft(changes, name, expected):
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    c = config(**changes)
    peft_config = LoraConfig(**{k: v for k, v in {**BASE, **changes}.items() if k != "peft_type"})
    assert bool(check_target_module_exists(peft_config, name)) == expected
    assert c.targets(name) == expected


@pytest.mark.parametrize(
    ("raw", "status", "reason_part"),
    [
        ({**BASE, "peft_type": "IA3"}, "unsupported", "IA3"),
        ({**BASE, "peft_type": "LOKR"}, "unsupported", "LOKR"),
        ({**BASE, "use_dora": True}, "unsupported", "DoRA"),
        ({**BASE, "bias": "all"}, "unsupported", "bias"),
        ({**BASE, "bias": "lora_only"}, "unsupported", "bias"),
        ({**BASE, "lora_bias": True}, "unsupported", "lora_bias"),
        ({**BASE, "modules_to_save": ["lm_head"]}, "unsupported", "modules_to_save"),
        ({**BASE, "init_lora_weights": "pissa_niter_4"}, "unsupported", "pissa"),
        ({**BASE, "target_parameters": ["experts.gate_up_proj"]}, "unsupported", "target_parameters"),
        ({"r": 8, "lora_alpha": 8}, "invalid", "peft_type"),
        ({"peft_type": "LORA", "lora_alpha": 8}, "invalid", "r missing"),
        ({**BASE, "r": "8"}, "invalid", "r must be"),
        ({**BASE, "r": 0}, "invalid", "r must be"),
        ({**BASE, "lora_alpha": None}, "invalid", "lora_alpha"),
        ({**BASE, "target_modules": 3}, "invalid", "target_modules"),
        ({**BASE, "target_modules": "(unclosed"}, "invalid", "regex"),
        ({**BASE, "rank_pattern": {"q_proj": 2.5}}, "invalid", "rank_pattern"),
        ({**BASE, "use_rslora": "yes"}, "invalid", "use_rslora"),
        ({**BASE, "bias": "some"}, "invalid", "bias"),
        ([1, 2], "invalid", "JSON object"),
        (BASE, "ok", None),
        ({**BASE, "use_dora": False, "lora_bias": False, "modules_to_save": None, "init_lora_weights": "gaussian"},
         "ok", None),
    ],
)
def test_check_adapter_config_names_the_reason(raw, status, reason_part):
    got_status, reason = check_adapter_config(raw)
    assert got_status == status
    if reason_part is None:
        assert reason is None
    else:
        assert reason_part in reason
        with pytest.raises(AdapterError) as caught:
            parse_adapter_config(raw)
        error = caught.value
        assert isinstance(error, UnsupportedAdapter if status == "unsupported" else InvalidAdapter)
        assert str(error) == error.reason == reason


def test_real_peft_config_round_trips():
    from peft import LoraConfig

    raw = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], use_rslora=True, task_type="CAUSAL_LM").to_dict()
    raw["peft_type"] = "LORA"
    raw = {k: (sorted(v) if isinstance(v, set) else v) for k, v in raw.items()}
    c = parse_adapter_config(raw)
    assert (c.r, c.lora_alpha, c.use_rslora, c.task_type, c.target_modules) == (4, 8.0, True, "CAUSAL_LM", ["q_proj"])
    assert c.to_dict()["r"] == 4
