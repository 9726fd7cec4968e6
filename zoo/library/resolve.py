"""Where a member's files come from when they are not copied into the library folder.

A resolver maps ``(repo_id, revision, subfolder)`` to a local folder holding ``adapter_config.json`` and
``adapter_model.safetensors`` (``subfolder``: the adapter's folder in its repo, '' at the root). Repo ids and
subfolders are validated first and never used as paths on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zoo.adapters.files import ADAPTER_FILES
from zoo.hub.adapter_ids import adapter_id
from zoo.library.manifest import LibraryError, check_repo_id, check_revision, check_subfolder

Resolver = Callable[[str, str, str], Path]


def hub_resolver(
    endpoint: str | None = None, cache_dir: str | Path | None = None, local_files_only: bool = False,
    token: str | None = None,
) -> Resolver:
    """Resolve through the ``huggingface_hub`` cache, pinned to the revision (default endpoint: ``HF_ENDPOINT``;
    ``token``: for private or gated member repos, default the client's own)."""

    def resolve(repo_id: str, revision: str, subfolder: str = "") -> Path:
        from huggingface_hub import snapshot_download

        files = adapter_files(repo_id, subfolder)
        folder = snapshot_download(check_repo_id(repo_id), revision=check_revision(revision), allow_patterns=files,
                                   endpoint=endpoint, cache_dir=cache_dir, local_files_only=local_files_only,
                                   token=token)
        return Path(folder) / subfolder if subfolder else Path(folder)

    return resolve


def folder_resolver(root: str | Path) -> Resolver:
    """Resolve ``org/name`` under a folder of repos (a demo zoo); the result must stay inside ``root``.

    The revision is not checked here: the manifest's content hashes pin the files instead.
    """
    root = Path(root).resolve()

    def resolve(repo_id: str, revision: str, subfolder: str = "") -> Path:
        repo = (root / check_repo_id(repo_id)).resolve()
        folder = (repo / check_subfolder(repo_id, subfolder)).resolve() if subfolder else repo
        if not folder.is_relative_to(root) or not folder.is_dir():
            raise LibraryError(f"{adapter_id(repo_id, subfolder)} is not a repo folder under {root}")
        return folder

    return resolve


def adapter_files(repo_id: str, subfolder: str = "") -> list[str]:
    """The adapter's files within its repo: the allow-list of a download that fetches that one folder only."""
    prefix = f"{check_subfolder(repo_id, subfolder)}/" if subfolder else ""
    return [prefix + name for name in ADAPTER_FILES]
