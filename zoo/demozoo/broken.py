"""Broken and hostile adapter repos that a crawler must survive (and refuse, with a recorded reason).

Each is built from a real expert (the donor) so that everything except the one defect looks normal:
the card names the zoo's base model, so a crawl filtered by base model finds them all.

The traversal repo carries ``../`` in the two places a hub client really meets file names: a sibling
whose name is percent-encoded (``..%2F..%2F..%2Fetc%2Fpasswd``: harmless on disk and as served, an
escape for a crawler that unquotes names before joining paths), and a weight index
(``adapter_model.safetensors.index.json``) whose ``weight_map`` points at ``../`` shard paths, which a
client following the index would request through the hub API.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from zoo.demozoo.experts import QV, ExpertSpec
from zoo.demozoo.publish import repo_dir, write_card, write_hub_stats
from zoo.demozoo.training import encode_example, sample_batches, train

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAVERSAL_NAME = "..%2F..%2F..%2Fetc%2Fpasswd"
DORA_STEPS = 30


@dataclass(frozen=True)
class Broken:
    repo_id: str
    kind: str
    reason: str
    story: str  # the card's explanation, as an uploader would have written it

    def describe(self, repo_id: str, files: list[str]) -> dict:
        return {"repo_id": repo_id, "kind": self.kind, "reason": self.reason, "files": files}


BROKEN = (
    Broken("lora-lab/{base}-double-lora-legacy", "pickle_only",
           "weights only as a pickle (adapter_model.bin); pickles are never loaded", "Legacy checkpoint."),
    Broken("adapterworks/aw-add-fp16", "nan_weights",
           "non-finite values (NaN) in adapter_model.safetensors", "Trained in fp16."),
    Broken("tinytuners/first-adapter-weights-only", "missing_config",
           "no adapter_config.json", "Weights only, config to follow."),
    Broken("quill-ai/quill-capital-wip", "malformed_config",
           "adapter_config.json is not valid JSON", "Work in progress."),
    Broken("lora-lab/{base}-reverse-lora-wide", "shape_mismatch",
           "adapter shapes do not fit the base model (trained on a wider model)", "Reverse adapter."),
    Broken("tinytuners/rotate-dora", "dora",
           "DoRA adapter (use_dora): magnitude vectors are not plain LoRA factors", "DoRA fine-tune."),
    Broken("sketchy-uploads/totally-safe-adapter", "path_traversal",
           "file names that resolve outside the repo ('../' in a sibling name and in the weight index)",
           "Totally safe."),
)


def build_broken(root: Path, donors: list[tuple[ExpertSpec, Path]], base: torch.nn.Module, tokenizer,
                 base_repo_id: str, base_name: str, seed: int, dora_steps: int = DORA_STEPS) -> list[dict]:
    """Write every broken repo; returns their ``zoo.json`` entries (``dora_steps``: how long the DoRA repo trains)."""
    rng = random.Random(f"{seed}/broken")
    entries = []
    for index, broken in enumerate(BROKEN):
        spec, donor = donors[index % len(donors)]
        repo_id = broken.repo_id.format(base=base_name)
        repo = repo_dir(root, repo_id)
        MAKERS[broken.kind](repo, donor, spec=spec, base=base, tokenizer=tokenizer, base_repo_id=base_repo_id, rng=rng,
                            dora_steps=dora_steps)
        meta = {"base_model": base_repo_id, "library_name": "peft", "license": "mit",
                "tags": ["lora", "peft", spec.task.family, spec.task.skill], "datasets": [spec.task.dataset]}
        write_card(repo, meta, f"# {repo_id}\n\n{broken.story}")
        downloads = int(rng.lognormvariate(3.0, 1.0))
        write_hub_stats(repo, downloads, downloads // 50)
        files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
        entries.append(broken.describe(repo_id, files))
    return entries


def _pickle_only(repo: Path, donor: Path, **_) -> None:
    shutil.copy(donor / ADAPTER_CONFIG, repo / ADAPTER_CONFIG)
    # A real pickle of a plain dict of tensors, the way old checkpoints were saved; nothing here loads it.
    torch.save(load_file(donor / ADAPTER_WEIGHTS), repo / "adapter_model.bin")


def _nan_weights(repo: Path, donor: Path, **_) -> None:
    shutil.copy(donor / ADAPTER_CONFIG, repo / ADAPTER_CONFIG)
    tensors = load_file(donor / ADAPTER_WEIGHTS)
    name = sorted(k for k in tensors if "lora_B" in k)[0]
    tensors[name][: max(1, tensors[name].shape[0] // 4)] = float("nan")
    save_file(tensors, repo / ADAPTER_WEIGHTS, metadata={"format": "pt"})


def _missing_config(repo: Path, donor: Path, **_) -> None:
    shutil.copy(donor / ADAPTER_WEIGHTS, repo / ADAPTER_WEIGHTS)


def _malformed_config(repo: Path, donor: Path, **_) -> None:
    shutil.copy(donor / ADAPTER_WEIGHTS, repo / ADAPTER_WEIGHTS)
    text = (donor / ADAPTER_CONFIG).read_text()
    (repo / ADAPTER_CONFIG).write_text(text[: len(text) // 2].rstrip() + ",\n")  # cut mid-object: not JSON


def _shape_mismatch(repo: Path, donor: Path, rng: random.Random, **_) -> None:
    """The donor's config with factors of a model 1.5x as wide: every key exists, no shape fits."""
    shutil.copy(donor / ADAPTER_CONFIG, repo / ADAPTER_CONFIG)
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    wide = {}
    for name, tensor in load_file(donor / ADAPTER_WEIGHTS).items():
        r0, r1 = tensor.shape
        shape = (r0, r1 * 3 // 2) if "lora_A" in name else (r0 * 3 // 2, r1)
        wide[name] = torch.randn(shape, generator=generator) * 0.02
    save_file(wide, repo / ADAPTER_WEIGHTS, metadata={"format": "pt"})


def _dora(repo: Path, donor: Path, spec: ExpertSpec, base: torch.nn.Module, tokenizer, base_repo_id: str,
          rng: random.Random, dora_steps: int, **_) -> None:
    """A real DoRA adapter: ``peft`` with ``use_dora=True``, briefly trained so its update is not zero."""
    torch.manual_seed(rng.randrange(2**31))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=QV, use_dora=True, lora_dropout=0.0,
                        task_type="CAUSAL_LM", base_model_name_or_path=base_repo_id)
    model = get_peft_model(copy.deepcopy(base), config)
    data = [encode_example(tokenizer, e) for e in spec.task.train]
    train(model, sample_batches(data, 16, random.Random(rng.random()), tokenizer.pad_token_id), dora_steps, 1e-2)
    model.save_pretrained(repo, save_embedding_layers=False)


def _path_traversal(repo: Path, donor: Path, base_repo_id: str, **_) -> None:
    shutil.copy(donor / ADAPTER_CONFIG, repo / ADAPTER_CONFIG)
    (repo / TRAVERSAL_NAME).write_text("not a passwd file: a sibling name that unquotes to ../../../etc/passwd\n")
    names = sorted(load_file(donor / ADAPTER_WEIGHTS))
    shards = [f"../../{base_repo_id}/model.safetensors", "../../../../etc/passwd"]
    index = {"metadata": {"total_size": 0}, "weight_map": {n: shards[i % 2] for i, n in enumerate(names)}}
    (repo / "adapter_model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


MAKERS = {
    "pickle_only": _pickle_only, "nan_weights": _nan_weights, "missing_config": _missing_config,
    "malformed_config": _malformed_config, "shape_mismatch": _shape_mismatch, "dora": _dora,
    "path_traversal": _path_traversal,
}
