"""The harness scores a model whose answers are known by construction, through the real code path.

The model is a real ``transformers`` causal LM with a bigram head (the next token depends only on the
current one), saved and loaded with ``AutoModelForCausalLM`` like any base. Its greedy completions and
target NLLs can be written down by hand; a rank-1 LoRA expert on the head changes one of them.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutput

from zoo.adapters.factors import Adapter, LoraFactors
from zoo.candidates import CandidateSpec, Expert, ExpertPool
from zoo.demozoo.tokenizer import build_tokenizer, save_tokenizer
from zoo.eval import EvalExample, evaluate
from zoo.eval.generation import cut_at_stop, greedy_completions

PEAK = 10.0  # the logit of every bigram the base knows; all other logits are 0
BOOST = 20.0  # what the expert adds to the logit of "z" after "x"


class BigramConfig(PretrainedConfig):
    model_type = "zoo-eval-test-bigram"

    def __init__(self, vocab_size: int = 8, **kwargs) -> None:
        self.vocab_size = vocab_size
        self.num_hidden_layers = 1  # generate() sizes its (unused) cache by it
        super().__init__(**kwargs)


class BigramLM(PreTrainedModel, GenerationMixin):
    """``logits[t] = head(one_hot(ids[t]))``: ``head.weight[j, i]`` is the logit of token ``j`` after token ``i``."""

    config_class = BigramConfig

    def __init__(self, config: BigramConfig) -> None:
        super().__init__(config)
        self.head = nn.Linear(config.vocab_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> CausalLMOutput:
        one_hot = nn.functional.one_hot(input_ids, self.config.vocab_size).to(self.head.weight.dtype)
        return CausalLMOutput(logits=self.head(one_hot))


AutoConfig.register(BigramConfig.model_type, BigramConfig)
AutoModelForCausalLM.register(BigramConfig, BigramLM)


@pytest.fixture(scope="module")
def bigram(tmp_path_factory) -> tuple[Path, ExpertPool, int]:
    """The base folder (``=`` -> ``x`` -> ``y`` -> ``</s>``, ``z`` -> ``</s>``), two experts, the vocab size."""
    folder = tmp_path_factory.mktemp("bigram")
    save_tokenizer(build_tokenizer(["ab=xyz"]), folder, 64)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    v, ids = len(tokenizer), tokenizer.convert_tokens_to_ids
    model = BigramLM(BigramConfig(vocab_size=v, use_cache=False, pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    with torch.no_grad():
        model.head.weight.zero_()
        for before, after in (("=", "x"), ("x", "y"), ("y", "</s>"), ("z", "</s>")):
            model.head.weight[ids(after), ids(before)] = PEAK
    model.save_pretrained(folder)

    def expert(name: str, row: str, column: str, value: float) -> Expert:
        a, b = torch.zeros(1, v), torch.zeros(v, 1)
        a[0, ids(column)], b[ids(row), 0] = 1.0, value
        path = Adapter({"head": LoraFactors(A=a, B=b)}).save_pretrained(folder / "experts" / name)
        return Expert(repo_id=f"org/{name}", path=path)

    pool = ExpertPool.of([expert("z-expert", "z", "x", BOOST), expert("idle-expert", "b", "a", 1.0)])
    return folder, pool, v


def suite() -> list[EvalExample]:
    """``hit``: the base's own greedy answer; ``miss``: the answer only the z-expert gives."""
    return [EvalExample(prompt, target, task, split)
            for prompt in ("ab=", "ba=")
            for target, task, split in (("xy", "hit", "held-in"), ("xz", "miss", "held-out"))]


def test_exact_match_and_nll_are_the_hand_computed_ones(bigram):
    folder, pool, v = bigram
    results = evaluate([CandidateSpec("base", name="base"), CandidateSpec("expert", ("org/z-expert",), name="z")],
                       suite(), folder, pool, oracle=False)
    base, z = results["base"], results["z"]
    log_z = math.log(math.exp(PEAK) + v - 1)  # every row of the base: one logit PEAK, v - 1 zeros
    log_z_boosted = math.log(math.exp(PEAK) + math.exp(BOOST) + v - 2)  # row "x" with the expert
    # Targets are scored as `target </s>`: three tokens each.
    assert base.task("hit").metrics["exact_match"] == 1.0 and base.task("miss").metrics["exact_match"] == 0.0
    assert base.task("hit").metrics["nll"] == pytest.approx(log_z - PEAK, abs=1e-6)
    assert base.task("miss").metrics["nll"] == pytest.approx((3 * log_z - 2 * PEAK) / 3, abs=1e-5)
    assert z.task("hit").metrics["exact_match"] == 0.0 and z.task("miss").metrics["exact_match"] == 1.0
    assert z.task("miss").metrics["nll"] == pytest.approx((2 * (log_z - PEAK) + log_z_boosted - BOOST) / 3, abs=1e-5)
    assert base.task("hit").n == 2
    held_in = base.split_means()["held-in"]
    assert (held_in["exact_match"], held_in["nll"], held_in["tasks"]) == (1.0, base.task("hit").metrics["nll"], 1)
    assert base.split_means()["held-out"]["exact_match"] == 0.0


def test_oracle_takes_the_best_expert_per_task_and_the_base_is_restored(bigram):
    folder, pool, _ = bigram
    specs = [CandidateSpec("base", name="base"),
             *(CandidateSpec("expert", (m,), name=m) for m in pool.names),
             CandidateSpec("base", name="base-again")]
    results = evaluate(specs, suite(), folder, pool)
    oracle = results["oracle"]
    assert oracle.chosen == {"hit": "org/idle-expert", "miss": "org/z-expert"}
    assert oracle.split_means()["held-in"]["exact_match"] == 1.0
    assert oracle.split_means()["held-out"]["exact_match"] == 1.0
    assert results["base-again"].tasks == results["base"].tasks  # folding the experts in was undone exactly
    assert all(c.cost.eval_s > 0 and c.cost.peak_mb >= 0 for c in results.candidates if c.kind != "oracle")


@pytest.fixture(scope="module")
def chatty(tmp_path_factory) -> tuple[BigramLM, object]:
    """A model that answers ``=`` with ``x`` then ``;`` then ``y`` forever: an answer followed by chatter."""
    folder = tmp_path_factory.mktemp("chatty")
    save_tokenizer(build_tokenizer(["ab=x;y"]), folder, 64)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.convert_tokens_to_ids
    model = BigramLM(BigramConfig(vocab_size=len(tokenizer), use_cache=False, pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    with torch.no_grad():
        model.head.weight.zero_()
        for before, after in (("=", "x"), ("x", ";"), (";", "y"), ("y", "y")):
            model.head.weight[ids(after), ids(before)] = PEAK
    return model.eval(), tokenizer


def test_completions_are_cut_at_the_first_stop_string_and_generation_stops_there(chatty):
    model, tokenizer = chatty
    calls = []
    generate = model.generate
    model.generate = lambda **kw: calls.append(generate(**kw)) or calls[-1]
    try:
        assert greedy_completions(model, tokenizer, ["ab="], max_new_tokens=8, stop=(";",)) == ["x"]
        stopped = calls[-1].shape[1]
        assert greedy_completions(model, tokenizer, ["ab="], max_new_tokens=8, stop=()) == ["x;yyyyyy"]
        assert stopped < calls[-1].shape[1]  # generation ended at the stop string, not at max_new_tokens
    finally:
        del model.generate


def test_cut_at_stop_keeps_text_up_to_the_earliest_stop_string():
    assert cut_at_stop("42\nThe answer is 42") == "42"
    assert cut_at_stop("no stop here") == "no stop here"
    assert cut_at_stop("a;b\nc", stop=("\n", ";")) == "a"
    assert cut_at_stop("\nlate", stop=("\n",)) == ""
