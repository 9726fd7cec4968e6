"""Candidates as folders: a merged (or single) adapter in PEFT format, or a routed library.

A folder is written under a temporary name and renamed into place when complete, so a build killed
mid-way leaves no half folder under the final name and a re-run simply builds it again.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.adapters import load_adapter
from zoo.adapters.factors import Adapter
from zoo.library import MemberSource, build_library, save_library
from zoo.adapters.files import ADAPTER_FILES

ADAPTER = "adapter"
LIBRARY = "library"


def write_atomically(folder: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write(tmp)`` into a sibling temporary folder, then rename it to ``folder`` (kept if it exists)."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, folder)
    except OSError:
        if not folder.is_dir():  # not someone else's complete folder: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def save_expert(source: Path, folder: Path) -> Path:
    """A single expert, its two files copied verbatim."""
    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        for name in ADAPTER_FILES:
            shutil.copyfile(source / name, tmp / name)

    return write_atomically(folder, write)


def save_merge(sources: Sequence[Path], method: str, options: Mapping[str, Any], folder: Path,
               base_model: str) -> Path:
    """The ``zoo.merge`` merge of the adapters at ``sources``, saved in PEFT format."""
    from zoo.merge import merge

    def write(tmp: Path) -> None:
        merged = merge([load_adapter(s) for s in sources], method, **options)
        merged.save_pretrained(tmp, base_model_name_or_path=base_model)

    return write_atomically(folder, write)


def save_routed_library(
    members: Sequence[MemberSource],
    router: str,
    settings: Mapping[str, Any],
    folder: Path,
    base_model: str,
    base_revision: str | None = None,
    gates: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """An Arrow or PHATGOOSE library with its experts copied in (loadable with no hub)."""
    def write(tmp: Path) -> None:
        library = build_library(members, base_model=base_model, router=router, settings=settings, gates=gates,
                                base_revision=base_revision)
        save_library(library, tmp, copy_experts=True)

    return write_atomically(folder, write)


def split_phatgoose_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """PHATGOOSE settings mix the router's (``top_k``) with gate training's: return both apart."""
    from zoo.routing import GateTrainingConfig

    training = {f.name for f in fields(GateTrainingConfig)}
    router = {k: v for k, v in settings.items() if k not in training}
    return router, GateTrainingConfig(**{k: v for k, v in settings.items() if k in training})


def train_gates(model: nn.Module, tokenizer: Any, experts: Sequence[Adapter],
                examples: Mapping[int, Sequence[tuple[str, str]]], config: Any) -> dict[int, dict[str, torch.Tensor]]:
    """PHATGOOSE gates of every member with ``examples`` (member index -> (prompt, target) pairs)."""
    from zoo.eval.text import encode_pair
    from zoo.routing import train_phatgoose_gates

    data = {i: [encode_pair(tokenizer, p, t) for p, t in pairs] for i, pairs in examples.items() if pairs}
    if not data:
        return {}
    return train_phatgoose_gates(model, list(experts), data, pad_id=tokenizer.pad_token_id, config=config).gates
