"""Model breadcrumbs: drop both the largest outliers and the small tail of each update, then sum."""

from zoo.merge.registry import MergeMethod, register

BREADCRUMBS = register(
    MergeMethod(
        name="breadcrumbs",
        pretty_name="Model Breadcrumbs",
        reference="Davari & Belilovsky 2024, Model Breadcrumbs, arXiv:2312.06795",
        sparsify="outliers",
        defaults={"density": 0.9, "gamma": 0.01},
    )
)
