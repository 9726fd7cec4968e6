"""Build profiles: which base model, which tasks, how many skills get experts, how long things train.

``tiny`` is what the test suite builds (about a minute on two cores); ``small`` is the demo default
(a bigger base, every family's fourth skill trained too, and a second expert for some tasks). Both
train a small Llama from scratch on synthetic tasks. ``real`` uses the real pretrained
SmolLM2-135M-Instruct (``zoo.demozoo.gguf_base``) with natural-language instruction tasks
(``zoo.demozoo.instruction_skills``); its experts train for a few dozen steps, because the base
already knows language and only needs to be pointed at a task.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    trained_skills_per_family: int
    n_countries: int
    n_train: int
    n_test: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    expert_steps: int
    expert_batch: int
    expert_lr: float
    duplicate_every: int  # every n-th trained task gets a second expert (0: none)
    workers: int  # processes training experts side by side (one torch thread each)
    base: str = "scratch"  # "scratch": pre-trained here; "smollm2": the converted SmolLM2-135M-Instruct
    task_set: str = "synthetic"  # "synthetic" (zoo.demozoo.skills) or "instructions" (instruction_skills)
    rehearsal: bool = True  # experts also distil generic text of the synthetic world (scratch bases only)
    dora_steps: int = 30  # training steps of the broken DoRA repo
    experts_without_dataset: int = 0  # second experts whose card names no dataset
    chat_template: bool = False  # prompts are wrapped in the tokenizer's chat template for training and scoring
    families: int | None = None  # only the first n families (a quick test build); None: all


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny", trained_skills_per_family=3, n_countries=10, n_train=512, n_test=48,
        hidden=64, layers=2, heads=4, intermediate=192,
        pretrain_steps=700, pretrain_batch=32, pretrain_lr=5e-3,
        expert_steps=200, expert_batch=16, expert_lr=1e-2, duplicate_every=0, workers=2,
    ),
    "small": Profile(
        name="small", trained_skills_per_family=4, n_countries=12, n_train=1024, n_test=96,
        hidden=96, layers=3, heads=4, intermediate=256,
        pretrain_steps=1000, pretrain_batch=32, pretrain_lr=4e-3,
        expert_steps=200, expert_batch=16, expert_lr=5e-3, duplicate_every=3, workers=2,
    ),
    "real": Profile(
        name="real", trained_skills_per_family=3, n_countries=0, n_train=256, n_test=32,
        hidden=0, layers=0, heads=0, intermediate=0, pretrain_steps=0, pretrain_batch=0, pretrain_lr=0.0,
        expert_steps=30, expert_batch=8, expert_lr=2e-3, duplicate_every=3, workers=2,
        base="smollm2", task_set="instructions", rehearsal=False, dora_steps=2, experts_without_dataset=2,
    ),
    # ``real`` cut down for the test suite: two families, one expert each, two training steps.
    "real-mini": Profile(
        name="real-mini", trained_skills_per_family=1, n_countries=0, n_train=16, n_test=4,
        hidden=0, layers=0, heads=0, intermediate=0, pretrain_steps=0, pretrain_batch=0, pretrain_lr=0.0,
        expert_steps=2, expert_batch=4, expert_lr=2e-3, duplicate_every=0, workers=2,
        base="smollm2", task_set="instructions", rehearsal=False, dora_steps=1, families=2,
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown demo zoo profile {name!r}; choose one of {sorted(PROFILES)}") from None
