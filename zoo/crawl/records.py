"""What the crawler learns, as plain data whose field names are the catalog's column names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ListedRepo:
    """One repo as the listing describes it (no extra request): a row of ``hub_repos``."""

    repo_id: str
    sha: str | None
    listing_digest: str | None = None  # fingerprint of the listing entry (stats aside), to skip rewriting unchanged rows
    last_modified: datetime | None = None
    created_at: datetime | None = None
    author: str | None = None
    downloads: int | None = None  # stats: stored in repo_stats, not in hub_repos (they move daily)
    likes: int | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    library_name: str | None = None
    pipeline_tag: str | None = None
    base_models: tuple[str, ...] = ()
    gated: str | None = None
    private: bool | None = None
    card_data: dict[str, Any] | None = None
    files: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()  # named by the card; stored in card_datasets
    discovered_by: tuple[str, ...] = ()  # the listings that found it ('peft', 'base_model:adapter', ...)


@dataclass(frozen=True)
class ModuleShape:
    """One LoRA module as the safetensors header describes it: ``A: (rank, d_in)``, ``B: (d_out, rank)``."""

    module: str
    rank: int
    d_in: int
    d_out: int
    dtype: str
    alpha: float
    scale: float


@dataclass
class AdapterFacts:
    """Everything read from one adapter (a repo's root or subfolder) at one commit: a row of ``adapters``
    plus its modules.

    ``status`` is 'ok', 'unsupported' or 'invalid' (facts of the commit, stable across crawls),
    'gated' or 'forbidden' (facts of the ``credentials`` used: read again with other ones) or 'failed'
    (the hub did not answer; the next crawl tries again). ``reason`` says why when not 'ok'. An 'ok'
    adapter whose gated base refused these credentials is 'unchecked' against it, and read again too.
    """

    repo_id: str
    sha: str
    reader_version: int
    subfolder: str = ""  # the adapter's folder in the repo ('' at its root): with repo_id, its key
    status: str = "ok"
    reason: str | None = None
    # ``HubHttp.credentials`` (never the token) of a read refused something: the adapter ('gated',
    # 'forbidden') or its base model's files (``base_check`` unchecked); read again with other credentials
    credentials: str | None = None
    peft_type: str | None = None
    r: int | None = None
    lora_alpha: float | None = None
    use_rslora: bool | None = None
    use_dora: bool | None = None
    target_modules: list[str] | None = None
    target_regex: str | None = None
    rank_pattern: dict[str, int] | None = None
    alpha_pattern: dict[str, float] | None = None
    fan_in_fan_out: bool | None = None
    bias: str | None = None
    task_type: str | None = None
    declared_base_model: str | None = None
    config: dict[str, Any] | None = None  # adapter_config.json as read
    weight_file: str | None = None
    weight_bytes: int | None = None
    dtype: str | None = None
    parameter_count: int | None = None
    module_count: int | None = None
    base_check: str | None = None
    weights_verified: bool = False
    modules: list[ModuleShape] = field(default_factory=list)

    def refuse(self, status: str, reason: str) -> None:
        """Mark the adapter unusable; what was read so far stays recorded."""
        self.status, self.reason = status, reason
