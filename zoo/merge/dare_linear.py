"""DARE: drop entries at random, rescale the survivors by 1/density, sum."""

from zoo.merge.registry import MergeMethod, register

DARE_LINEAR = register(
    MergeMethod(
        name="dare_linear",
        pretty_name="DARE (linear)",
        reference="Yu et al. 2024, Language models are Super Mario (DARE), arXiv:2311.03099",
        sparsify="random",
        defaults={"density": 0.5},
    )
)
