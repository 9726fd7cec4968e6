"""``base``: the base model alone, the reference every candidate must beat."""

from zoo.candidates.kinds.registry import CandidateKind, register_kind


class BaseKind(CandidateKind):
    name = "base"
    description = "the base model alone"
    max_members = 0


register_kind(BaseKind())
