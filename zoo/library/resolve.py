"""Where a member's files come from when they are not copied into the library folder.

A resolver maps ``(repo_id, revision)`` to a local folder holding ``adapter_config.json`` and
``adapter_model.safetensors``. Repo ids are validated first and never used as paths on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zoo.adapters.files import ADAPTER_FILES
from zoo.library.manifest import LibraryError, check_repo_id, check_revision

Resolver = Callable[[str, str], Path]


def hub_resolver(
    endpoint: str | None = None, cache_dir: str | Path | None = None, local_files_only: bool = False,
    token: str | None = None,
) -> Resolver:
    """Resolve through the ``huggingface_hub`` cache, pinned to the revision (default endpoint: ``HF_ENDPOINT``;
    ``token``: for private or gated member repos, default the client's own)."""

    def resolve(repo_id: str, revision: str) -> Path:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(check_repo_id(repo_id), revision=check_revision(revision),
                                   allow_patterns=list(ADAPTER_FILES), endpoint=endpoint, cache_dir=cache_dir,
                                   local_files_only=local_files_only, token=token)
        return Path(folder)

    return resolve


def folder_resolver(root: str | Path) -> Resolver:
    """Resolve ``org/name`` under a folder of repos (a demo zoo); the result must stay inside ``root``.

    The revision is not checked here: the manifest's content hashes pin the files instead.
    """
    root = Path(root).resolve()

    def resolve(repo_id: str, revision: str) -> Path:
        folder = (root / check_repo_id(repo_id)).resolve()
        if not folder.is_relative_to(root) or not folder.is_dir():
            raise LibraryError(f"{repo_id} is not a repo folder under {root}")
        return folder

    return resolve
