"""Linear (weighted-average) merge, exact in factor space."""

from zoo.merge.registry import MergeMethod, register

LINEAR = register(
    MergeMethod(
        name="linear",
        pretty_name="Linear",
        reference="Wortsman et al. 2022, Model soups, arXiv:2203.05482",
        normalize=True,
        factored=True,
    )
)
