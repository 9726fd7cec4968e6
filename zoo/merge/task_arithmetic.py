"""Task arithmetic (weighted sum of task vectors), exact in factor space."""

from zoo.merge.registry import MergeMethod, register

TASK_ARITHMETIC = register(
    MergeMethod(
        name="task_arithmetic",
        pretty_name="Task Arithmetic",
        reference="Ilharco et al. 2023, Editing models with task arithmetic, arXiv:2212.04089",
        factored=True,
    )
)
