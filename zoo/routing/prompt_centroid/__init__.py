"""Prompt-centroid routing: per-example retrieval of experts by their training prompts (registers
``prompt_centroid``)."""

from zoo.routing.prompt_centroid.router import (
    EMBEDDED,
    LEFT_OUT,
    PromptCentroidConfig,
    PromptCentroidFit,
    PromptCentroidRouter,
    prompt_embeddings,
)
from zoo.routing.registry import register_router

register_router(PromptCentroidRouter())

__all__ = ["EMBEDDED", "LEFT_OUT", "PromptCentroidConfig", "PromptCentroidFit", "PromptCentroidRouter",
           "prompt_embeddings"]
