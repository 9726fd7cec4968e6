"""The task suite: seeded generation of every task's examples, and reading it back from a built zoo.

A *task* is a unit of evaluation with one split:

* ``held-in`` tasks (kind ``trained``): a skill under its training templates; some expert trains on
  the task's ``train`` examples, and its ``test`` examples use inputs that training never saw
  (except for table skills, below);
* ``held-out`` tasks that no expert trains on: kind ``paraphrase`` (a trained skill under a template
  no expert saw, on the held-in task's test inputs), ``unseen-skill`` (a skill of a known family that
  has no expert) and ``composition`` (two known skills one after the other).

Table skills (lookups) cannot hold out inputs, because a fact that was never trained cannot be
recalled: their held-in test is recall of the trained facts (each fact once), and generalisation is
measured by their paraphrase task. (Holding out fact-template pairs instead was tried: experts then
answered with the facts that template was trained with, worse than on a wholly new template.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from zoo.demozoo.instruction_skills import instruction_compositions, instruction_family_skills
from zoo.demozoo.profiles import Profile
from zoo.demozoo.skills import Fields, Skill, composition_skills, family_skills, make_world

DATASET_ORG = "zoo-tasks"
HELD_IN = "held-in"
HELD_OUT = "held-out"


@dataclass(frozen=True)
class Example:
    """One prompt and its expected completion; ``template`` is ``<skill>/<id>`` (``t*`` trained, ``p*`` paraphrase)."""

    prompt: str
    target: str
    task: str
    skill: str
    family: str
    template: str
    split: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class TaskSpec:
    """A task with its examples; ``dataset`` is the repo id of the dataset repo that publishes it."""

    name: str
    family: str
    skill: str
    kind: str
    split: str
    components: tuple[str, ...]
    train: tuple[Example, ...]
    test: tuple[Example, ...]

    @property
    def dataset(self) -> str:
        return f"{DATASET_ORG}/{self.name}"

    def describe(self) -> dict:
        """The task's entry in ``zoo.json`` (everything but the examples)."""
        return {
            "task": self.name, "family": self.family, "skill": self.skill, "kind": self.kind,
            "split": self.split, "components": list(self.components), "dataset": self.dataset,
            "templates": sorted({e.template for e in self.train + self.test}),
            "n_train": len(self.train), "n_test": len(self.test),
        }


def task_name(family: str, skill: str, suffix: str = "") -> str:
    """Repo-safe task id, e.g. ``strings-swap-ends-paraphrase``."""
    return "-".join(p for p in (family, skill.replace("_", "-"), suffix) if p)


def profile_skills(profile: Profile, seed: int) -> tuple[dict[str, list[Skill]], list[Skill]]:
    """The profile's skills by family (in training order) and its compositions of skills among them."""
    if profile.task_set == "instructions":
        families, compositions = instruction_family_skills(), instruction_compositions()
    else:
        world = make_world(random.Random(f"{seed}/world"), profile.n_countries)
        families, compositions = family_skills(world), composition_skills(world)
    families = dict(list(families.items())[: profile.families])
    known = {s.name for skills in families.values() for s in skills}
    return families, [c for c in compositions if set(c.components) <= known]


def make_suite(profile: Profile, seed: int) -> list[TaskSpec]:
    """Every task of the profile, generated from ``seed`` alone (same inputs, same data)."""
    families, compositions = profile_skills(profile, seed)
    tasks: list[TaskSpec] = []
    for family, skills in families.items():
        for index, skill in enumerate(skills):
            rng = random.Random(f"{seed}/{family}/{skill.name}")
            if index < profile.trained_skills_per_family:
                tasks += _trained_and_paraphrase(skill, rng, profile)
            else:
                name = task_name(family, skill.name)
                test = _fresh_examples(skill, rng, profile.n_test, name, skill.templates)
                tasks.append(TaskSpec(name, family, skill.name, "unseen-skill", HELD_OUT, (), (), test))
    for skill in compositions:
        name = task_name("compose", skill.name)
        test = _fresh_examples(skill, random.Random(f"{seed}/compose/{skill.name}"), profile.n_test, name,
                               skill.templates)
        tasks.append(TaskSpec(name, "compose", skill.name, "composition", HELD_OUT, skill.components, (), test))
    return tasks


def _trained_and_paraphrase(skill: Skill, rng: random.Random, profile: Profile) -> list[TaskSpec]:
    held_in, paraphrase = task_name(skill.family, skill.name), task_name(skill.family, skill.name, "paraphrase")
    if skill.keys is not None:
        train, test, para = _table_splits(skill, rng, profile, held_in, paraphrase)
    else:
        inputs = _distinct_inputs(skill, rng, profile.n_train + profile.n_test)
        n_test_inputs = min(profile.n_test, max(1, len(inputs) // 5))
        test_inputs, train_inputs = inputs[:n_test_inputs], inputs[n_test_inputs:]
        train = _pick(skill, rng, train_inputs, skill.templates, "t", profile.n_train, held_in, HELD_IN)
        test = _pick(skill, rng, test_inputs, skill.templates, "t", profile.n_test, held_in, HELD_IN)
        para = _pick(skill, rng, test_inputs, skill.paraphrases, "p", profile.n_test, paraphrase, HELD_OUT)
    return [
        TaskSpec(held_in, skill.family, skill.name, "trained", HELD_IN, (), tuple(train), tuple(test)),
        TaskSpec(paraphrase, skill.family, skill.name, "paraphrase", HELD_OUT, (), (), tuple(para)),
    ]


def _table_splits(skill: Skill, rng: random.Random, profile: Profile, held_in: str, paraphrase: str):
    """Every fact under every training template; test: each fact recalled once; paraphrase: the new template."""
    assert skill.keys is not None
    n = len(skill.templates)
    train = [_example(skill, {"c": key}, t, f"t{i}", held_in, HELD_IN)
             for key in skill.keys for i, t in enumerate(skill.templates)]
    test = [_example(skill, {"c": key}, skill.templates[i % n], f"t{i % n}", held_in, HELD_IN)
            for i, key in enumerate(skill.keys)]
    para = [_example(skill, {"c": key}, skill.paraphrases[0], "p0", paraphrase, HELD_OUT) for key in skill.keys]
    rng.shuffle(train)
    return train, test[: profile.n_test], para[: profile.n_test]


def _distinct_inputs(skill: Skill, rng: random.Random, wanted: int) -> list[Fields]:
    """Up to ``wanted`` distinct inputs; small domains (single digits) simply yield fewer."""
    seen: dict[tuple, Fields] = {}
    for _ in range(wanted * 20):
        fields = skill.sample(rng)
        seen.setdefault(tuple(sorted(fields.items())), fields)
        if len(seen) == wanted:
            break
    return list(seen.values())


def _pick(skill: Skill, rng: random.Random, inputs: Sequence[Fields], templates: Sequence[str], prefix: str,
          limit: int, task: str, split: str) -> list[Example]:
    """A random sample of distinct (input, template) pairs, at most ``limit``, each input at least once if possible."""
    pairs = [(i, t) for i in range(len(inputs)) for t in range(len(templates))]
    rng.shuffle(pairs)
    firsts, rest, covered = [], [], set()
    for i, t in pairs:
        (rest if i in covered else firsts).append((i, t))
        covered.add(i)
    chosen = (firsts + rest)[:limit]
    rng.shuffle(chosen)
    return [_example(skill, inputs[i], templates[t], f"{prefix}{t}", task, split) for i, t in chosen]


def _fresh_examples(skill: Skill, rng: random.Random, n: int, task: str,
                    templates: Sequence[str]) -> tuple[Example, ...]:
    inputs = _distinct_inputs(skill, rng, n)
    return tuple(_pick(skill, rng, inputs, templates, "t", n, task, HELD_OUT))


def _example(skill: Skill, fields: Fields, template: str, template_id: str, task: str, split: str) -> Example:
    return Example(prompt=template.format(**fields), target=skill.solve(fields), task=task, skill=skill.name,
                   family=skill.family, template=f"{skill.name}/{template_id}", split=split)


def write_jsonl(path: Path, examples: Iterable[Example]) -> None:
    path.write_text("".join(e.to_json() + "\n" for e in examples), encoding="utf-8")


def read_jsonl(path: Path) -> list[Example]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Example(**json.loads(line)) for line in lines if line.strip()]


def load_suite(zoo_dir: Path) -> list[TaskSpec]:
    """The task suite of a built zoo, read from its manifest and dataset repos (no regeneration)."""
    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    suite = []
    for entry in manifest["tasks"]:
        repo = zoo_dir / "datasets" / entry["dataset"]
        train = read_jsonl(repo / "train.jsonl") if (repo / "train.jsonl").exists() else []
        suite.append(TaskSpec(entry["task"], entry["family"], entry["skill"], entry["kind"], entry["split"],
                              tuple(entry["components"]), tuple(train), tuple(read_jsonl(repo / "test.jsonl"))))
    return suite
