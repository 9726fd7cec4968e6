"""``build_zoo``: the whole demo zoo from nothing, deterministic for (profile, seed), cached, atomic.

The zoo is built in a temporary sibling folder and renamed into place only when complete
(``cached_build.build_once``), so a crash never leaves a half zoo that looks finished. Its marker
fingerprints what was built (profile, seed, ``ZOO_VERSION``, a hash of the sources that make the zoo
and the versions of torch/transformers/peft); a later call with the same fingerprint returns at once.
The base is either pre-trained here (``tiny``, ``small``) or SmolLM2-135M-Instruct converted from its
GGUF (``real``), cached beside the zoo in ``.bases/`` so that a rebuilt zoo does not convert again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import random
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.demozoo.base_model import LINE_CHARS, MAX_POSITIONS, pretrain_base
from zoo.demozoo.broken import build_broken
from zoo.demozoo.cached_build import build_once
from zoo.demozoo.corpus import corpus_lines
from zoo.demozoo.experts import ExpertSpec, plan_experts, train_expert
from zoo.demozoo.gguf_base import converted_base, publish_base
from zoo.demozoo.profiles import Profile, get_profile
from zoo.demozoo.publish import publish_dataset, repo_dir, write_card, write_hub_stats, write_json
from zoo.demozoo.skills import composition_skills, family_skills, make_world
from zoo.demozoo.tasks import TaskSpec, make_suite
from zoo.demozoo.tokenizer import build_tokenizer, save_tokenizer

ZOO_VERSION = "1"
MANIFEST = "zoo.json"
BASE_ORG = "zoo-base"
SMOLLM2_NAME = "smollm2-135m-instruct"
TOKENIZER_SAMPLE_LINES = 5000
# One thread: the results are then bit-identical whatever the machine's core count, and on shared
# cores a single thread was measured several times faster than two fighting for them.
BUILD_THREADS = 1
# Modules that read a zoo but take no part in making one: editing them must not force a rebuild.
NOT_BUILD_CODE = {"__init__.py", "report.py", "pool.py"}

Progress = Callable[[int, int, str], None]


def fingerprint(profile: str, seed: int) -> dict:
    """What a build depends on: a change of the code that makes the zoo, or of the libraries, rebuilds it."""
    import peft
    import transformers

    here = Path(__file__).parent
    sources = sorted(p for p in here.glob("*.py") if p.name not in NOT_BUILD_CODE) + [here.parent / "eval" / "text.py"]
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:16]
    libraries = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    return {"profile": profile, "seed": seed, "version": ZOO_VERSION, "source": digest, "libraries": libraries}


def build_zoo(out_dir: Path, profile: str = "small", seed: int = 0, progress: Progress | None = None) -> Path:
    """Build the demo zoo into ``out_dir`` (or return it at once if an identical build is there)."""
    out_dir = Path(out_dir).resolve()
    prof = get_profile(profile)
    report = progress or (lambda done, total, message: None)

    def build(staging: Path) -> None:
        with _threads(BUILD_THREADS), warnings.catch_warnings():
            # peft calls a transformers API that transformers 5 deprecates, once per expert.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            _build_into(staging, prof, seed, report, converted_bases_dir(out_dir))

    return build_once(out_dir, fingerprint(profile, seed), build)


def converted_bases_dir(zoo_dir: Path) -> Path:
    """Where converted base models are cached, beside the zoo: a rebuilt zoo does not convert again."""
    return zoo_dir.parent / ".bases"


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No tqdm bar of transformers in the middle of the caller's own progress display."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


class _Counter:
    """Turns per-step callbacks of the stages into one overall progress count."""

    def __init__(self, total: int, report: Progress) -> None:
        self.done, self.total, self.report, self.message = 0, total, report, ""

    def stage(self, message: str) -> Callable[[int], None]:
        self.message = message
        self.report(self.done, self.total, message)
        return self.step

    def step(self, _: int = 0) -> None:
        self.advance(1)

    def advance(self, n: int) -> None:
        self.done += n
        self.report(self.done, self.total, self.message)


def _build_into(root: Path, prof: Profile, seed: int, report: Progress, bases_dir: Path) -> None:
    suite = make_suite(prof, seed)
    base_name = SMOLLM2_NAME if prof.base == "smollm2" else f"llama-{prof.name}"
    base_repo_id = f"{BASE_ORG}/{base_name}"
    experts = plan_experts(suite, base_name, prof, seed)
    counter = _Counter(prof.pretrain_steps + 1 + len(experts) * prof.expert_steps + prof.dora_steps + len(suite),
                       report)

    base_repo = repo_dir(root, base_repo_id)
    if prof.base == "smollm2":
        shared = _smollm2_base(base_repo, base_repo_id, bases_dir / SMOLLM2_NAME, counter)
    else:
        shared = _scratch_base(base_repo, base_repo_id, prof, seed, suite, counter)
    shared.base.name_or_path = base_repo_id  # what peft writes as the adapters' base_model_name_or_path
    shared.base.requires_grad_(False)

    _train_experts(root, shared, experts, base_repo_id, prof, counter)
    donors = [(spec, root / spec.repo_id) for spec in experts]

    counter.stage("writing broken and hostile repos")
    broken = build_broken(root, donors, shared.base, shared.tokenizer, base_repo_id, base_name, seed,
                          prof.dora_steps)
    counter.advance(prof.dora_steps)

    rng = random.Random(f"{seed}/datasets")
    counter.stage("publishing task datasets")
    for task in suite:
        publish_dataset(root, task, int(rng.lognormvariate(4.0, 1.2)))
        counter.step()

    write_json(root / MANIFEST, _manifest(prof, seed, base_repo_id, suite, experts, broken))


@dataclass(frozen=True)
class _Shared:
    """What every expert's training reads: the base, its tokenizer, and (scratch bases) generic rehearsal text."""

    base: torch.nn.Module
    tokenizer: object
    rehearsal: Callable[[int], Iterator[str]] | None  # an expert's seed -> its stream of rehearsal lines


def _scratch_base(base_repo: Path, base_repo_id: str, prof: Profile, seed: int, suite: list[TaskSpec],
                  counter: _Counter) -> _Shared:
    """A character tokenizer and a small Llama pre-trained here on the synthetic world's generic text."""
    from transformers import AutoTokenizer

    world = make_world(random.Random(f"{seed}/world"), prof.n_countries)
    skills = [s for group in family_skills(world).values() for s in group] + composition_skills(world)
    sample = itertools.islice(corpus_lines(world, skills, random.Random(f"{seed}/tokenizer"), LINE_CHARS),
                              TOKENIZER_SAMPLE_LINES)
    texts = [e.prompt + e.target for task in suite for e in task.train + task.test]
    save_tokenizer(build_tokenizer(itertools.chain(texts, sample)), base_repo, MAX_POSITIONS)
    tokenizer = AutoTokenizer.from_pretrained(base_repo)

    base = pretrain_base(prof, tokenizer, world, skills, seed, counter.stage("pre-training the base model"))
    with _quiet_transformers():
        base.save_pretrained(base_repo)
    _write_base_card(base_repo, base_repo_id, prof, base)
    counter.step()

    def rehearsal(expert_seed: int) -> Iterator[str]:
        return corpus_lines(world, skills, random.Random(f"{expert_seed}/rehearsal"), LINE_CHARS, copy_fraction=0.0)

    return _Shared(base, tokenizer, rehearsal if prof.rehearsal else None)


def _smollm2_base(base_repo: Path, base_repo_id: str, converted_dir: Path, counter: _Counter) -> _Shared:
    """SmolLM2-135M-Instruct, converted from its GGUF once (cached in ``converted_dir``) and published as the base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    counter.stage("converting SmolLM2-135M-Instruct from GGUF (cached after the first time)")
    with _quiet_transformers():
        publish_base(converted_base(converted_dir), base_repo, base_repo_id)
        base = AutoModelForCausalLM.from_pretrained(base_repo, dtype=torch.float32).eval()
    counter.step()
    return _Shared(base, AutoTokenizer.from_pretrained(base_repo), None)


def _train_experts(root: Path, shared: _Shared, specs: list[ExpertSpec], base_repo_id: str, prof: Profile,
                   counter: _Counter) -> None:
    """Train and publish every expert, in this process or in ``prof.workers`` forked ones.

    Experts are independent (own seed, same base weights, one torch thread each), so the files do
    not depend on which process trained which expert. Forked workers inherit the base in memory and
    never re-import the caller's ``__main__`` (spawned ones would, and deadlock an unguarded script
    on the build lock); where fork does not exist, the experts train one after the other.
    """
    global _FORKED
    if prof.workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for spec in specs:
            _publish_expert(root, spec, base_repo_id, prof, shared, counter.stage(f"training {spec.repo_id}"))
        return
    counter.stage(f"training {len(specs)} experts in {prof.workers} processes")
    _FORKED = shared
    # Configured, the tokenizers library does not warn about forking after parallel use.
    set_here = "TOKENIZERS_PARALLELISM" not in os.environ
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        with ProcessPoolExecutor(prof.workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=torch.set_num_threads, initargs=(BUILD_THREADS,)) as pool:
            jobs = [pool.submit(_publish_expert_forked, root, spec, base_repo_id, prof) for spec in specs]
            for job in as_completed(jobs):
                job.result()
                counter.advance(prof.expert_steps)
    finally:
        _FORKED = None
        if set_here:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)


_FORKED: _Shared | None = None  # inherited by forked expert workers


def _publish_expert_forked(root: Path, spec: ExpertSpec, base_repo_id: str, prof: Profile) -> None:
    assert _FORKED is not None
    _publish_expert(root, spec, base_repo_id, prof, _FORKED)


def _publish_expert(root: Path, spec: ExpertSpec, base_repo_id: str, prof: Profile, shared: _Shared,
                    on_step: Callable[[int], None] | None = None) -> None:
    rehearsal = shared.rehearsal(spec.seed) if shared.rehearsal else None
    model = train_expert(shared.base, shared.tokenizer, spec, base_repo_id, prof.expert_steps, prof.expert_batch,
                         prof.expert_lr, rehearsal, on_step)
    repo = repo_dir(root, spec.repo_id)
    model.save_pretrained(repo, save_embedding_layers=False)  # "auto" would look the base up on the hub
    _sort_target_modules(repo / "adapter_config.json")
    _write_expert_card(repo, spec, base_repo_id)


def _manifest(prof: Profile, seed: int, base_repo_id: str, suite: list[TaskSpec], experts: list[ExpertSpec],
              broken: list[dict]) -> dict:
    families: dict[str, list[str]] = {}
    for task in suite:
        if task.kind in ("trained", "unseen-skill"):
            families.setdefault(task.family, []).append(task.skill)
    return {
        "format": 1,
        "version": ZOO_VERSION,
        "profile": prof.name,
        "seed": seed,
        "base_model": base_repo_id,
        # Whether prompts go through the base tokenizer's chat template (in training, so in scoring too).
        "chat_template": prof.chat_template,
        "families": families,
        "tasks": [t.describe() for t in suite],
        "experts": [e.describe() for e in experts],
        "broken": broken,
    }


def _sort_target_modules(path: Path) -> None:
    """peft stores a target list as a set, so its saved order changes with the hash seed; sort it back."""
    config = json.loads(path.read_text())
    if isinstance(config["target_modules"], list):
        config["target_modules"] = sorted(config["target_modules"])
    write_json(path, config)


def _write_base_card(repo: Path, repo_id: str, prof: Profile, model) -> None:
    meta = {"library_name": "transformers", "license": "apache-2.0", "pipeline_tag": "text-generation",
            "tags": ["llama", "demo-zoo", "from-scratch", "character-level"]}
    params = sum(p.numel() for p in model.parameters())
    body = (f"# {repo_id}\n\nA {params / 1e3:.0f}k-parameter Llama-style causal LM ({prof.layers} layers, hidden "
            f"{prof.hidden}) with a character-level tokenizer, pre-trained from scratch for {prof.pretrain_steps} "
            "steps on generic synthetic text (word lists, numbers, lists, made-up names, verbatim repeats). It "
            "knows the material of the demo zoo's tasks but none of their input->output mappings: that is "
            "what the LoRA experts add.")
    write_card(repo, meta, body)
    write_hub_stats(repo, 5000 + prof.hidden * 10, 42)


def _write_expert_card(repo: Path, spec: ExpertSpec, base_repo_id: str) -> None:
    task = spec.task
    meta = {"base_model": base_repo_id, "library_name": "peft", "license": spec.license,
            "tags": ["lora", "peft", "demo-zoo", task.family, task.skill],
            **({"datasets": [task.dataset]} if spec.dataset_on_card else {}), "pipeline_tag": "text-generation"}
    r = spec.recipe
    trained_on = f"the `{task.name}` task" if spec.dataset_on_card else "my own data"
    body = (f"# {spec.repo_id}\n\nLoRA adapter for `{base_repo_id}` trained on {trained_on} "
            f"(family `{task.family}`, skill `{task.skill}`): rank {r.rank}, alpha {r.alpha}"
            f"{', rsLoRA' if r.rslora else ''}, targets `{r.targets}`.\n\n"
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n"
            f"base = AutoModelForCausalLM.from_pretrained(\"{base_repo_id}\")\n"
            f"model = PeftModel.from_pretrained(base, \"{spec.repo_id}\")\n```")
    write_card(repo, meta, body)
    write_hub_stats(repo, spec.downloads, spec.likes)
