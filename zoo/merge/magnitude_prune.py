"""Magnitude pruning of each update, then a weighted sum (PEFT's ``magnitude_prune``; TIES without sign election)."""

from zoo.merge.registry import MergeMethod, register

MAGNITUDE_PRUNE = register(
    MergeMethod(
        name="magnitude_prune",
        pretty_name="Magnitude pruning",
        reference="PEFT add_weighted_adapter(combination_type='magnitude_prune'); trim step of arXiv:2306.01708",
        sparsify="magnitude",
        defaults={"density": 0.2},
    )
)
