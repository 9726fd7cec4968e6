"""The registered candidate as an MLflow pyfunc model, logged as code (``mlflow.models.set_model``).

MLflow stores this file's source with the model and runs it again at load time, so nothing is ever
unpickled. Artifacts: ``base_model`` (a local Hugging Face folder) and at most one of ``adapter`` (a PEFT
LoRA folder, folded into the weights: served at the base's speed) or ``library`` (a routed library with
its experts copied in, routed per token). ``predict`` returns greedy completions, decoded exactly as the
evaluation harness decodes them, so a served champion answers what it was scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

DEFAULT_MAX_NEW_TOKENS = 32
PROMPT_COLUMN = "prompt"

# An unnamed string column: MLflow then accepts a plain list of prompts as well as a DataFrame.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string")]),
    outputs=Schema([ColSpec("string")]),
    params=ParamSchema([ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS)]),
)


class RecycledModel(mlflow.pyfunc.PythonModel):
    """The base model with the candidate applied: an adapter folded in, a library routing, or nothing."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        artifacts = context.artifacts
        base = artifacts["base_model"]
        self.tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True).eval()
        if "adapter" in artifacts:
            from zoo.adapters import load_adapter
            from zoo.adapters.fold import fold

            fold(self.model, load_adapter(artifacts["adapter"]))
        elif "library" in artifacts:
            from zoo.library import load_library

            # Members are copied into the library folder, so no hub is needed (a reference would be refused).
            load_library(artifacts["library"]).route(self.model)

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[str]:
        """Greedy completion of each prompt (the prompt itself stripped), up to ``max_new_tokens``, cut at the
        first newline as the harness cuts it."""
        from zoo.eval.generation import greedy_completions

        max_new_tokens = int((params or {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
        return greedy_completions(self.model, self.tokenizer, prompts_of(model_input), max_new_tokens)


def prompts_of(model_input: pd.DataFrame | Sequence[str]) -> list[str]:
    """Prompts from a DataFrame (its ``prompt`` column, else its only column) or a list of strings."""
    if isinstance(model_input, pd.DataFrame):
        column = model_input[PROMPT_COLUMN] if PROMPT_COLUMN in model_input.columns else model_input.iloc[:, 0]
        return [str(p) for p in column]
    if isinstance(model_input, str):
        return [model_input]
    return [str(p) for p in model_input]


mlflow.models.set_model(RecycledModel())
