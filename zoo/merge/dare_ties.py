"""DARE sparsification followed by TIES' sign election and disjoint average."""

from zoo.merge.registry import MergeMethod, register

DARE_TIES = register(
    MergeMethod(
        name="dare_ties",
        pretty_name="DARE-TIES",
        reference="Yu et al. 2024, Language models are Super Mario (DARE), arXiv:2311.03099",
        sparsify="random",
        consensus="sign",
        normalize=True,
        defaults={"density": 0.5, "majority": "total"},
    )
)
