"""The demo zoo: a synthetic task suite, a base model trained from scratch, LoRA experts and broken repos.

Everything is generated locally (no network), deterministically for a (profile, seed), and laid out as
hub repos that ``zoo.localhub`` serves. ``zoo.json`` in the built folder is the ground truth (skills,
families, splits, expected crawl failures) that clustering, routing and evaluation are measured against.
"""

from zoo.demozoo.build import MANIFEST, ZOO_VERSION, build_zoo
from zoo.eval.scoring import score_model
from zoo.demozoo.tasks import Example, TaskSpec, load_suite, make_suite

__all__ = ["MANIFEST", "ZOO_VERSION", "Example", "TaskSpec", "build_zoo", "load_suite", "make_suite", "score_model"]
