"""What building a candidate may need beyond its spec: the experts, and the base model for data-aware steps.

The base model is loaded at most once per context (a shard of candidates shares it), and only when a
step needs it (gate training, a data-aware merge); merges of weights alone never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from zoo.candidates.experts import ExpertPool


@dataclass
class BuildContext:
    """``base_dir``: a local Hugging Face folder of the base model; ``loaded``: a model and tokenizer already
    loaded by the caller (the harness shares its own), used instead of loading ``base_dir``."""

    pool: ExpertPool
    base_dir: Path | None = None
    device: str = "cpu"
    loaded: tuple[nn.Module, Any] | None = field(default=None, repr=False)

    def base_model(self) -> tuple[nn.Module, Any]:
        """The base model on ``device`` and its tokenizer, loaded on first use."""
        if self.loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.base_dir is None:
                raise ValueError("this candidate needs the base model, but the build was given no base_dir")
            tokenizer = AutoTokenizer.from_pretrained(self.base_dir)
            model = AutoModelForCausalLM.from_pretrained(self.base_dir).to(self.device).eval()
            self.loaded = (model, tokenizer)
        return self.loaded

    def data_of(self, members: Sequence[str]) -> MembersData:
        """The training data of ``members`` (library order), as a router's fit reads it."""
        return MembersData(self, list(members))


@dataclass
class MembersData:
    """:class:`zoo.routing.FitData` over some members of a context's pool: member ``i`` is ``members[i]``."""

    context: BuildContext
    members: list[str]

    def examples(self, member: int) -> list[tuple[str, str]]:
        return self.context.pool.train_pairs(self.members[member])

    def base_model(self) -> tuple[nn.Module, Any]:
        return self.context.base_model()
