"""LoRA experts: who publishes which task with which configuration, and training them with ``peft``.

The recipes vary the way adapters on the hub vary (rank 4/8/16, ``lora_alpha``, target modules as a
list or as a regex string, rsLoRA, a ``rank_pattern``/``alpha_pattern``), so that ingest code meets
every case. Lookup experts always reach the MLPs, because memorising facts needs them; the weakest
recipe for string edits (rank 4 on ``q_proj,v_proj``) comes last, where only ``small`` uses it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from zoo.demozoo.profiles import Profile
from zoo.demozoo.tasks import TaskSpec
from zoo.eval.text import collate
from zoo.demozoo.training import encode_example, encode_text, sample_batches, train

QV = ["q_proj", "v_proj"]
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
ATTENTION_MLP = ATTENTION + ["gate_proj", "up_proj", "down_proj"]
# Regex form: PEFT full-matches it against module names such as ``model.layers.0.self_attn.q_proj``.
REGEX_ATTENTION_MLP = r".*\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(up_proj|down_proj))"
REGEX_ATTENTION_MLP_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]

ORGS = ("lora-lab", "tinytuners", "adapterworks", "quill-ai")
LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "bsd-3-clause", "openrail")


@dataclass(frozen=True)
class Recipe:
    """A LoRA configuration as someone on the hub would have chosen it."""

    rank: int
    alpha: int
    targets: list[str] | str
    rslora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, int] = field(default_factory=dict)

    @property
    def modules(self) -> list[str]:
        """Module kinds adapted (the regex resolved), for the manifest."""
        return REGEX_ATTENTION_MLP_MODULES if isinstance(self.targets, str) else sorted(self.targets)

    @property
    def scale(self) -> float:
        return self.alpha / (self.rank ** 0.5 if self.rslora else self.rank)


# Per family, the recipes of its skills in training order; a second expert of a task uses the next one.
RECIPES: dict[str, list[Recipe]] = {
    "strings": [
        Recipe(8, 16, ATTENTION),
        Recipe(8, 8, ATTENTION_MLP),
        Recipe(16, 32, REGEX_ATTENTION_MLP, rslora=True),
        Recipe(4, 8, QV),
        Recipe(16, 16, ATTENTION),
    ],
    "arithmetic": [
        Recipe(8, 16, ATTENTION_MLP),
        Recipe(4, 4, REGEX_ATTENTION_MLP, rslora=True),
        Recipe(16, 32, QV),
        Recipe(16, 16, ATTENTION_MLP),
        Recipe(8, 32, ATTENTION),
    ],
    "lists": [
        Recipe(4, 8, ATTENTION),
        Recipe(8, 16, QV, rslora=True),
        Recipe(16, 32, ATTENTION_MLP),
        Recipe(8, 16, REGEX_ATTENTION_MLP),
        Recipe(4, 16, QV),
    ],
    "lookups": [
        Recipe(8, 16, ATTENTION_MLP, rank_pattern={"down_proj": 16}, alpha_pattern={"down_proj": 32}),
        Recipe(16, 16, REGEX_ATTENTION_MLP),
        Recipe(8, 8, ATTENTION_MLP, rslora=True),
        Recipe(16, 32, ATTENTION_MLP),
        Recipe(8, 16, REGEX_ATTENTION_MLP),
    ],
}


# The real profile's recipes, per family of instruction tasks (same rules: lookups-like knowledge
# tasks reach the MLPs; the cheapest recipes, q/v only, go to tasks that only reformat their input).
INSTRUCTION_RECIPES: dict[str, list[Recipe]] = {
    "formatting": [
        Recipe(8, 16, ATTENTION_MLP),
        Recipe(4, 8, QV),
        Recipe(16, 32, REGEX_ATTENTION_MLP, rslora=True),
        Recipe(8, 8, ATTENTION),
    ],
    "arithmetic": [
        Recipe(8, 16, ATTENTION_MLP, rank_pattern={"down_proj": 16}, alpha_pattern={"down_proj": 32}),
        Recipe(16, 16, REGEX_ATTENTION_MLP),
        Recipe(8, 8, ATTENTION_MLP, rslora=True),
        Recipe(4, 8, ATTENTION_MLP),
    ],
    "lists": [
        Recipe(8, 16, ATTENTION),
        Recipe(4, 8, QV, rslora=True),
        Recipe(16, 32, ATTENTION),
        Recipe(8, 16, REGEX_ATTENTION_MLP),
    ],
    "vocabulary": [
        Recipe(16, 32, ATTENTION_MLP),
        Recipe(8, 16, REGEX_ATTENTION_MLP, rslora=True),
        Recipe(8, 8, ATTENTION_MLP, alpha_pattern={"up_proj": 16}),
        Recipe(4, 4, ATTENTION_MLP),
    ],
}


@dataclass(frozen=True)
class ExpertSpec:
    repo_id: str
    task: TaskSpec
    recipe: Recipe
    license: str
    downloads: int
    likes: int
    seed: int
    dataset_on_card: bool = True  # False: the uploader did not say what the expert was trained on

    def lora_config(self, base_repo_id: str) -> LoraConfig:
        r = self.recipe
        return LoraConfig(
            r=r.rank, lora_alpha=r.alpha, target_modules=r.targets, use_rslora=r.rslora,
            rank_pattern=dict(r.rank_pattern), alpha_pattern=dict(r.alpha_pattern), lora_dropout=0.0,
            bias="none", task_type="CAUSAL_LM", base_model_name_or_path=base_repo_id,
        )

    def describe(self) -> dict:
        """The expert's entry in ``zoo.json``."""
        r = self.recipe
        return {
            "repo_id": self.repo_id, "task": self.task.name, "skill": self.task.skill, "family": self.task.family,
            "dataset": self.task.dataset, "dataset_on_card": self.dataset_on_card, "rank": r.rank, "alpha": r.alpha,
            "target_modules": sorted(r.targets) if isinstance(r.targets, list) else r.targets,
            "modules": r.modules, "use_rslora": r.rslora, "rank_pattern": r.rank_pattern,
            "alpha_pattern": r.alpha_pattern, "license": self.license, "downloads": self.downloads,
            "likes": self.likes,
        }


def _repo_name(org: str, base_name: str, skill: str, recipe: Recipe, variant: int) -> str:
    skill = skill.replace("_", "-")
    return {
        "lora-lab": f"{base_name}-{skill}-lora-r{recipe.rank}",
        "tinytuners": f"{skill}-adapter" + (f"-v{variant + 1}" if variant else ""),
        "adapterworks": f"aw-{skill}-{'rs' if recipe.rslora else 'std'}{recipe.rank}",
        "quill-ai": f"quill-{skill}" + ("-mlp" if "mlp" in str(recipe.targets) or "up_proj" in recipe.targets else ""),
    }[org]


def plan_experts(tasks: list[TaskSpec], base_name: str, profile: Profile, seed: int) -> list[ExpertSpec]:
    """One expert per trained task (two for every ``duplicate_every``-th), spread over orgs and licenses.

    The first ``experts_without_dataset`` second experts get a card that names no dataset: on the hub
    many adapters say nothing about their training data, and methods that need it must cope.
    """
    rng = random.Random(f"{seed}/experts")
    recipes = INSTRUCTION_RECIPES if profile.task_set == "instructions" else RECIPES
    trained = [t for t in tasks if t.kind == "trained"]
    specs: list[ExpertSpec] = []
    undocumented = 0
    for index, task in enumerate(trained):
        family_index = [t.family for t in trained[: index + 1]].count(task.family) - 1
        copies = 2 if profile.duplicate_every and index % profile.duplicate_every == 0 else 1
        for variant in range(copies):
            recipe = recipes[task.family][(family_index + variant) % len(recipes[task.family])]
            org = ORGS[len(specs) % len(ORGS)]
            downloads = int(rng.lognormvariate(5.0, 1.6))
            on_card = not (variant and undocumented < profile.experts_without_dataset)
            undocumented += not on_card
            specs.append(ExpertSpec(
                repo_id=f"{org}/{_repo_name(org, base_name, task.skill, recipe, variant)}", task=task, recipe=recipe,
                license=LICENSES[len(specs) % len(LICENSES)], downloads=downloads,
                likes=downloads // rng.randint(15, 120), seed=rng.randrange(2**31), dataset_on_card=on_card))
    assert len({s.repo_id for s in specs}) == len(specs), "expert repo ids must be unique"
    return specs


def train_expert(base: torch.nn.Module, tokenizer, spec: ExpertSpec, base_repo_id: str, steps: int, batch: int,
                 lr: float, rehearsal: Iterator[str] | None, on_step: Callable[[int], None] | None = None) -> PeftModel:
    """Train a fresh LoRA on the task's train split; the base is copied, never modified.

    With ``rehearsal`` (scratch bases), every step also rehearses ``batch // 4`` lines of generic
    text, with a KL term that keeps the expert's predictions there equal to the base's. Measured on
    the tiny and small zoos: without it an expert raised the NLL of *other* families' tasks 1.3-2.9x (it answered
    everything in its task's format), which made every merge and every misrouted token destructive;
    with it that factor is about 1. Distillation rather than plain LM loss on the generic text,
    because the LM loss keeps pre-training the base, the same update in every expert, which hid the
    families from clustering (within/across-family cosine 0.06/0.04 instead of 0.07/0.01).

    The learning rate is divided by the LoRA scale (relative to 2), so that every recipe moves its
    weight update at a similar speed and all experts end up trained, whatever their alpha.
    """
    torch.manual_seed(spec.seed)
    model = get_peft_model(copy.deepcopy(base), spec.lora_config(base_repo_id))
    data = [encode_example(tokenizer, e) for e in spec.task.train]
    task_batches = sample_batches(data, batch, random.Random(spec.seed), tokenizer.pad_token_id)
    if rehearsal is None:
        train(model, task_batches, steps, lr * 2.0 / spec.recipe.scale, on_step)
        return model

    def batches() -> Iterator[dict]:
        for task_batch in task_batches:
            lines = [encode_text(tokenizer, next(rehearsal)) for _ in range(batch // 4)]
            yield {"task": task_batch, "generic": collate(lines, tokenizer.pad_token_id)}

    train(model, batches(), steps, lr * 2.0 / spec.recipe.scale, on_step, loss_fn=_task_and_rehearsal_loss)
    return model


def _task_and_rehearsal_loss(model: PeftModel, batch: dict) -> torch.Tensor:
    """Task cross-entropy plus KL(base || expert) per token of the generic rows."""
    generic = {k: batch["generic"][k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad(), model.disable_adapter():
        reference = torch.log_softmax(model(**generic).logits, dim=-1)
    logits = torch.log_softmax(model(**generic).logits, dim=-1)
    mask = generic["attention_mask"].bool()
    kl = torch.nn.functional.kl_div(logits[mask], reference[mask], log_target=True, reduction="batchmean")
    return model(**batch["task"]).loss + kl
