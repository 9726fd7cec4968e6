"""Measure every expert of a built zoo against the base on its own task, from the published files.

Run ``python -m zoo.demozoo.report DIR`` to print the markdown table that ``docs/zoo.md`` shows. The
models are loaded the way a user would load them (``AutoModelForCausalLM`` + ``PeftModel``), so the
table also checks that what was published is what was trained.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.demozoo.scoring import score_model
from zoo.demozoo.tasks import load_suite

OFF_TASK_EXAMPLES = 24


@dataclass(frozen=True)
class ExpertRow:
    repo_id: str
    task: str
    base_nll: float
    expert_nll: float
    base_em: float
    expert_em: float
    paraphrase_base_nll: float
    paraphrase_expert_nll: float
    paraphrase_expert_em: float
    off_task: float


def load_base(zoo_dir: Path):
    """The zoo's base model and tokenizer, from its repo folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    path = zoo_dir / manifest["base_model"]
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def evaluate_experts(zoo_dir: Path, generate: bool = True) -> list[ExpertRow]:
    """Per expert: base vs expert on the held-in test split and on the paraphrase (held-out) of its task.

    ``off_task`` is the mean over the held-in tasks of *other* families of expert NLL / base NLL (on
    up to ``OFF_TASK_EXAMPLES`` examples each): about 1 means the expert leaves what it was not
    trained for alone, which merges and routers rely on.
    """
    from peft import PeftModel

    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    suite = {t.name: t for t in load_suite(zoo_dir)}
    base, tokenizer = load_base(zoo_dir)
    base_scores: dict[str, dict] = {}
    rows = []
    held_in = [t for t in suite.values() if t.kind == "trained"]
    with torch.inference_mode():
        off_base = {t.name: score_model(base, tokenizer, t.test[:OFF_TASK_EXAMPLES], generate=False)["nll"]
                    for t in held_in}
        for expert in manifest["experts"]:
            task, paraphrase = suite[expert["task"]], suite[expert["task"] + "-paraphrase"]
            for t in (task, paraphrase):
                if t.name not in base_scores:
                    base_scores[t.name] = score_model(base, tokenizer, t.test, generate=generate)
            model = PeftModel.from_pretrained(copy.deepcopy(base), zoo_dir / expert["repo_id"])
            own, para = (score_model(model, tokenizer, t.test, generate=generate) for t in (task, paraphrase))
            others = [t for t in held_in if t.family != task.family]
            off = [score_model(model, tokenizer, t.test[:OFF_TASK_EXAMPLES], generate=False)["nll"] / off_base[t.name]
                   for t in others]
            b, bp = base_scores[task.name], base_scores[paraphrase.name]
            rows.append(ExpertRow(expert["repo_id"], task.name, b["nll"], own["nll"], b["exact_match"],
                                  own["exact_match"], bp["nll"], para["nll"], para["exact_match"], sum(off) / len(off)))
    return rows


def _factors(repo: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per adapted module, ``(scale * B, A)`` with the config's scale (rsLoRA and patterns resolved)."""
    from safetensors.torch import load_file

    config = json.loads((repo / "adapter_config.json").read_text())
    weights = load_file(repo / "adapter_model.safetensors")
    factors = {}
    for key, a in weights.items():
        if ".lora_A." in key:
            module = key.split(".lora_A.")[0]
            kind = module.rsplit(".", 1)[-1]
            rank, alpha = config["rank_pattern"].get(kind, config["r"]), config["alpha_pattern"].get(kind, config["lora_alpha"])
            scale = alpha / (rank ** 0.5 if config["use_rslora"] else rank)
            factors[module] = (scale * weights[key.replace(".lora_A.", ".lora_B.")], a)
    return factors


def family_similarity(zoo_dir: Path) -> dict[str, float]:
    """Mean cosine of the experts' weight updates within a family and across families.

    Computed on the factors (``<B1 A1, B2 A2> = sum((B1^T B2) * (A1 A2^T))``) over the modules both
    experts adapt: evidence that the families are visible in weight space, as clustering needs.
    """
    zoo_dir = Path(zoo_dir)
    experts = json.loads((zoo_dir / "zoo.json").read_text())["experts"]
    factors = [_factors(zoo_dir / e["repo_id"]) for e in experts]

    def inner(f: dict, g: dict, modules: set[str]) -> float:
        return sum(float(((f[m][0].T @ g[m][0]) * (f[m][1] @ g[m][1].T)).sum()) for m in modules)

    within, across = [], []
    for i in range(len(experts)):
        for j in range(i + 1, len(experts)):
            shared = set(factors[i]) & set(factors[j])
            cosine = inner(factors[i], factors[j], shared) / math.sqrt(
                inner(factors[i], factors[i], shared) * inner(factors[j], factors[j], shared))
            (within if experts[i]["family"] == experts[j]["family"] else across).append(cosine)
    return {"within": sum(within) / len(within), "across": sum(across) / len(across)}


def markdown_table(rows: list[ExpertRow]) -> str:
    lines = ["| expert | task | base NLL | expert NLL | ratio | base EM | expert EM | paraphrase NLL base -> expert "
             "| paraphrase EM | off-task NLL x |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.repo_id} | {r.task} | {r.base_nll:.2f} | {r.expert_nll:.2f} | "
                     f"{r.expert_nll / r.base_nll:.2f} | {r.base_em:.2f} | {r.expert_em:.2f} | "
                     f"{r.paraphrase_base_nll:.2f} -> {r.paraphrase_expert_nll:.2f} | {r.paraphrase_expert_em:.2f} | "
                     f"{r.off_task:.2f} |")
    n = len(rows)
    mean = lambda values: sum(values) / n  # noqa: E731
    lines.append(f"| **mean of {n}** | | {mean([r.base_nll for r in rows]):.2f} | {mean([r.expert_nll for r in rows]):.2f} | "
                 f"{mean([r.expert_nll / r.base_nll for r in rows]):.2f} | {mean([r.base_em for r in rows]):.2f} | "
                 f"{mean([r.expert_em for r in rows]):.2f} | {mean([r.paraphrase_base_nll for r in rows]):.2f} -> "
                 f"{mean([r.paraphrase_expert_nll for r in rows]):.2f} | {mean([r.paraphrase_expert_em for r in rows]):.2f} | "
                 f"{mean([r.off_task for r in rows]):.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    zoo_dir = Path(argv[0])
    print(markdown_table(evaluate_experts(zoo_dir)))
    similarity = family_similarity(zoo_dir)
    print(f"\nMean cosine of weight updates: within a family {similarity['within']:.3f}, "
          f"across families {similarity['across']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
