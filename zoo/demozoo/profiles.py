"""Build profiles: how big the base model is, how many skills get experts, how long things train.

``tiny`` is what the test suite builds (about a minute on two cores); ``small`` is the demo default
(a bigger base, every family's fourth skill trained too, and a second expert for some tasks).
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
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown demo zoo profile {name!r}; choose one of {sorted(PROFILES)}") from None
