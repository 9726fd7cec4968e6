"""``fingerprint``: norms, Arrow prototypes and sketches of a base model's adapters into the catalog.

Each adapter's weights are downloaded once per commit (pinned to the sha the crawl read); later steps
(clustering, routing vectors) read the catalog instead of the weight files.
"""

from __future__ import annotations

from prefect import flow

from tasks.fingerprint import fingerprint_one, plan_fingerprints
from tasks.hub import hub_from_settings
from tasks.progress import StepProgress
from zoo.settings import load_settings

DEFAULT_SKETCH_SIZE = 64  # k of the k x k sketches: estimates within ~0.07 of the exact cosine on the demo zoo


@flow(name="fingerprint", log_prints=False)
def fingerprint(
    base_model: str,
    endpoint: str | None = None,
    catalog_path: str | None = None,
    sketch_size: int = DEFAULT_SKETCH_SIZE,
    seed: int = 0,
) -> dict[str, int]:
    """Fingerprint every supported adapter of ``base_model`` not yet fingerprinted at its commit."""
    catalog = load_settings().catalog_path if catalog_path is None else catalog_path
    hub = hub_from_settings(endpoint)
    todo, unchanged = plan_fingerprints(catalog, base_model, sketch_size, seed)
    counts = {"unchanged": unchanged, "ok": 0, "failed": 0}
    progress = StepProgress("fingerprint-progress", f"adapters of {base_model} fingerprinted", len(todo))
    for adapter in todo:
        status = fingerprint_one.with_options(task_run_name=f"fingerprint {adapter['adapter_id']}")(
            catalog, hub, base_model, adapter["repo_id"], adapter["sha"], sketch_size, seed, adapter["subfolder"])
        counts[status] += 1
        progress.advance()
    return counts
