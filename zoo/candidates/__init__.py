"""One candidate model: a spec per candidate (one content key), a kind registry that builds and applies each
kind, one planner, and the experts they are made of. The flows, the harness and ``zoo evaluate`` all use it.
"""

from zoo.candidates.build import applied, build_candidate, write_atomically
from zoo.candidates.context import BuildContext
from zoo.candidates.experts import Expert, ExpertPool, read_train_pairs
from zoo.candidates.kinds import KINDS, Applied, CandidateKind, get_kind
from zoo.candidates.plan import CandidateChoices, exact_clusters, plan_candidates
from zoo.candidates.spec import CandidateSpec, Member

__all__ = [
    "KINDS",
    "Applied",
    "BuildContext",
    "CandidateChoices",
    "CandidateKind",
    "CandidateSpec",
    "Expert",
    "ExpertPool",
    "Member",
    "applied",
    "build_candidate",
    "exact_clusters",
    "get_kind",
    "plan_candidates",
    "read_train_pairs",
    "write_atomically",
]
