"""What building a candidate may need beyond its spec: the experts, and the base model for data-aware steps.

The base model is loaded at most once per context (a shard of candidates shares it), and only when a
step needs it (gate training, a data-aware merge); merges of weights alone never load it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.adapters.fold import folded
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
        """The training data of ``members`` (library or merge order), as routers' fits and data-aware merges
        read it."""
        return MembersData(self, list(members))


@dataclass
class MembersData:
    """What data-aware steps read about some members of a context's pool (member ``i`` is ``members[i]``): a
    router's :class:`zoo.routing.FitData` and a merge's :class:`zoo.merge.registry.MergeData`."""

    context: BuildContext
    members: list[str]

    def examples(self, member: int) -> list[tuple[str, str]]:
        return self.context.pool.train_pairs(self.members[member])

    def base_model(self) -> tuple[nn.Module, Any]:
        return self.context.base_model()

    def grams(self, member: int, modules: Collection[str]) -> dict[str, torch.Tensor]:
        """``X^T X`` of each module's inputs over the member's training examples (prompt and target) run through
        the base. A member whose data is unknown borrows the other members' examples; with none known at all
        every Gram is the identity (RegMean then averages)."""
        pairs = self.examples(member) or [p for i in range(len(self.members)) if i != member for p in self.examples(i)]
        model, tokenizer = self.base_model()
        if not pairs:
            return {m: torch.eye(_in_features(model.get_submodule(m)), dtype=torch.float64) for m in modules}
        texts = [prompt + target for prompt, target in pairs[:GRAM_EXAMPLES]]
        return input_grams(model, tokenizer, texts, modules)


    def score(self, merged: Adapter) -> float:
        """Mean target NLL of the base with ``merged`` folded in, over a held-in sample of every member's own
        training examples (what greedy soups select on; never the evaluation suite)."""
        from zoo.eval.scoring import target_nll

        examples = [{"prompt": p, "target": t} for i in range(len(self.members))
                    for p, t in self.examples(i)[:SCORE_EXAMPLES]]
        if not examples:
            raise ValueError("greedy_soup needs the training data of at least one member to select on")
        model, tokenizer = self.base_model()
        with folded(model, merged):
            losses = target_nll(model, tokenizer, examples)
        return sum(losses) / len(losses)


# Examples per member whose layer inputs make its Grams (RegMean): a few hundred, as its paper uses.
GRAM_EXAMPLES = 256
# Examples per member a greedy soup scores its merges on.
SCORE_EXAMPLES = 32
GRAM_BATCH = 16


@torch.no_grad()
def input_grams(model: nn.Module, tokenizer: Any, texts: Sequence[str], modules: Collection[str]
                ) -> dict[str, torch.Tensor]:
    """``X^T X`` (float64, ``(d_in, d_in)``) of the inputs of ``modules`` over the non-padding tokens of ``texts``."""
    device = next(model.parameters()).device
    grams: dict[str, torch.Tensor] = {}
    mask: list[torch.Tensor] = []

    def collect(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            x = inputs[0].reshape(-1, inputs[0].shape[-1])[mask[0]].double()
            grams[name] = grams[name] + x.T @ x if name in grams else x.T @ x
        return hook

    hooks = [model.get_submodule(m).register_forward_hook(collect(m)) for m in modules]
    try:
        for start in range(0, len(texts), GRAM_BATCH):
            enc = tokenizer(list(texts[start:start + GRAM_BATCH]), return_tensors="pt", padding=True).to(device)
            mask[:] = [enc["attention_mask"].reshape(-1).bool()]
            model(**enc)
    finally:
        for hook in hooks:
            hook.remove()
    return {m: grams[m].cpu() for m in modules}


def _in_features(module: nn.Module) -> int:
    """``d_in`` of a linear layer: ``nn.Linear``, or GPT-2's ``Conv1D`` whose weight is ``(d_in, d_out)``."""
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]
