"""Measure every expert of a built zoo against the base on its own task, from the published files.

Run ``python -m zoo.demozoo.report DIR`` to print the markdown tables that ``docs/zoo.md`` shows (the
experts' recipes, expert vs base, the oracle per held-in task, and how visible the families are in
weight space). The
models are loaded the way a user would load them (``AutoModelForCausalLM`` + ``PeftModel``), so the
table also checks that what was published is what was trained.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.eval.scoring import score_model
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
            rank = config["rank_pattern"].get(kind, config["r"])
            alpha = config["alpha_pattern"].get(kind, config["lora_alpha"])
            scale = alpha / (rank ** 0.5 if config["use_rslora"] else rank)
            factors[module] = (scale * weights[key.replace(".lora_A.", ".lora_B.")], a)
    return factors


def family_similarity(zoo_dir: Path) -> dict[str, float]:
    """How visible the families are in weight space: mean cosines within / across, and a clustering's ARI.

    Cosines of the experts' weight updates are computed on the factors
    (``<B1 A1, B2 A2> = sum((B1^T B2) * (A1 A2^T))``) over the modules both experts adapt; ``ari`` is
    the adjusted Rand index of average-linkage clustering of ``1 - cosine`` into as many clusters as
    there are families.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    zoo_dir = Path(zoo_dir)
    experts = json.loads((zoo_dir / "zoo.json").read_text())["experts"]
    factors = [_factors(zoo_dir / e["repo_id"]) for e in experts]
    families = [e["family"] for e in experts]

    def inner(f: dict, g: dict, modules: set[str]) -> float:
        return sum(float(((f[m][0].T @ g[m][0]) * (f[m][1] @ g[m][1].T)).sum()) for m in modules)

    n = len(experts)
    cosine = torch.eye(n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            shared = set(factors[i]) & set(factors[j])
            cosine[i, j] = cosine[j, i] = inner(factors[i], factors[j], shared) / math.sqrt(
                inner(factors[i], factors[i], shared) * inner(factors[j], factors[j], shared))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    within = [float(cosine[i, j]) for i, j in pairs if families[i] == families[j]]
    across = [float(cosine[i, j]) for i, j in pairs if families[i] != families[j]]
    clusters = AgglomerativeClustering(n_clusters=len(set(families)), metric="precomputed",
                                       linkage="average").fit_predict((1 - cosine).numpy())
    return {"within": sum(within) / len(within), "across": sum(across) / len(across),
            "ari": adjusted_rand_score(families, clusters)}


def markdown_table(rows: list[ExpertRow]) -> str:
    lines = ["| expert | task | base NLL | expert NLL | ratio | base EM | expert EM | paraphrase NLL base -> expert "
             "| paraphrase EM | off-task NLL x |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.repo_id} | {r.task} | {r.base_nll:.2f} | {r.expert_nll:.2f} | "
                     f"{r.expert_nll / r.base_nll:.2f} | {r.base_em:.2f} | {r.expert_em:.2f} | "
                     f"{r.paraphrase_base_nll:.2f} -> {r.paraphrase_expert_nll:.2f} | {r.paraphrase_expert_em:.2f} | "
                     f"{r.off_task:.2f} |")
    def mean(field: str) -> float:
        return sum(getattr(r, field) for r in rows) / len(rows)

    ratio = sum(r.expert_nll / r.base_nll for r in rows) / len(rows)
    lines.append(f"| **mean of {len(rows)}** | | {mean('base_nll'):.2f} | {mean('expert_nll'):.2f} | {ratio:.2f} | "
                 f"{mean('base_em'):.2f} | {mean('expert_em'):.2f} | {mean('paraphrase_base_nll'):.2f} -> "
                 f"{mean('paraphrase_expert_nll'):.2f} | {mean('paraphrase_expert_em'):.2f} | {mean('off_task'):.2f} |")
    return "\n".join(lines)


def oracle_table(rows: list[ExpertRow]) -> str:
    """Per held-in task: the base's EM and the oracle's (its best expert), the upper reference of section 6."""
    best: dict[str, ExpertRow] = {}
    for r in rows:
        if r.task not in best or r.expert_em > best[r.task].expert_em:
            best[r.task] = r
    lines = ["| held-in task | base EM | oracle EM | best expert |", "|---|---:|---:|---|"]
    lines += [f"| {t} | {r.base_em:.2f} | {r.expert_em:.2f} | {r.repo_id} |" for t, r in best.items()]
    base = sum(r.base_em for r in best.values()) / len(best)
    oracle = sum(r.expert_em for r in best.values()) / len(best)
    lines.append(f"| **mean of {len(best)}** | {base:.2f} | {oracle:.2f} | |")
    return "\n".join(lines)


def recipes_table(zoo_dir: Path) -> str:
    """The experts' LoRA configurations as ``zoo.json`` records them."""
    experts = json.loads((Path(zoo_dir) / "zoo.json").read_text())["experts"]
    lines = ["| expert | task | rank | alpha | rsLoRA | target_modules | rank / alpha pattern |",
             "|---|---|---:|---:|---|---|---|"]
    for e in experts:
        targets = e["target_modules"] if isinstance(e["target_modules"], str) else ",".join(e["target_modules"])
        targets = targets.replace("|", "\\|")  # a regex's alternatives would split the markdown cell
        pattern = f"{e['rank_pattern']} / {e['alpha_pattern']}" if e["rank_pattern"] or e["alpha_pattern"] else ""
        rslora = "yes" if e["use_rslora"] else ""
        row = (e["repo_id"], e["task"], e["rank"], e["alpha"], rslora, f"`{targets}`", pattern)
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    zoo_dir = Path(argv[0])
    print(recipes_table(zoo_dir) + "\n")
    started = time.monotonic()
    rows = evaluate_experts(zoo_dir)
    print(markdown_table(rows) + "\n")
    print(oracle_table(rows))
    print(f"\nEvaluated in {time.monotonic() - started:.0f} s (load average {os.getloadavg()[0]:.1f})")
    similarity = family_similarity(zoo_dir)
    print(f"\nMean cosine of weight updates: within a family {similarity['within']:.3f}, across families "
          f"{similarity['across']:.3f}; families recovered by average-linkage clustering: ARI {similarity['ari']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
