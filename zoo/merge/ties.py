"""TIES: trim to the largest magnitudes, elect a sign per entry, average the agreeing entries.

As in mergekit, weights scale the trimmed updates *before* the election and the average divides by the
summed weights of the agreeing adapters; PEFT elects on unweighted updates and divides by their count.
The two agree whenever all weights are equal and positive (the benchmark compares them there).
"""

from zoo.merge.registry import MergeMethod, register

TIES = register(
    MergeMethod(
        name="ties",
        pretty_name="TIES",
        reference="Yadav et al. 2023, TIES-Merging, arXiv:2306.01708",
        sparsify="magnitude",
        consensus="sign",
        normalize=True,
        defaults={"density": 0.2, "majority": "total"},
    )
)
