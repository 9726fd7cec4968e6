"""What to crawl: a listing query over the hub's PEFT repos."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CrawlQuery:
    """PEFT adapter repos, optionally narrowed to base models (any of them), an id substring and an author.

    ``limit`` caps how many repos are listed; a capped listing is incomplete, so it cannot tell that a
    repo vanished.
    """

    base_models: tuple[str, ...] = ()
    search: str | None = None
    author: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_models", tuple(sorted(set(self.base_models))))
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be a positive number of repos")

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "base_models": list(self.base_models)}

    def scope(self, endpoint: str) -> str:
        """Identity of the repo set this query lists on ``endpoint`` (the limit aside)."""
        key = {"endpoint": endpoint.rstrip("/"), **self.to_dict()}
        key.pop("limit")
        return json.dumps(key, sort_keys=True, separators=(",", ":"))
