"""Factored LoRA algebra: exact inner products, cosine, block Gram, sketches and SVD of ``B @ A``."""

from zoo.algebra.inner import (
    PairwiseInner,
    cosine_matrix,
    frobenius_norm,
    inner_product,
    module_cosines,
    module_gram,
    module_inner,
    pairwise_inner,
)
from zoo.algebra.sketch import sketch, sketch_cosine_matrix, sketch_embedding, sketch_many, sketch_pairwise_inner
from zoo.algebra.svd import factored_svd, truncate_factors

__all__ = [
    "PairwiseInner",
    "cosine_matrix",
    "factored_svd",
    "frobenius_norm",
    "inner_product",
    "module_cosines",
    "module_gram",
    "module_inner",
    "pairwise_inner",
    "sketch",
    "sketch_cosine_matrix",
    "sketch_embedding",
    "sketch_many",
    "sketch_pairwise_inner",
    "truncate_factors",
]
