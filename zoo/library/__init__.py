"""Routed libraries as artefacts: a folder with a manifest, routing vectors and (optionally) the experts,
shared through hub repos."""

from zoo.library.library import Library, MemberSource, build_library, load_library, member_from_repo, save_library
from zoo.library.manifest import LibraryError, LibraryManifest, MemberEntry
from zoo.library.push import pull_library, push_library
from zoo.library.resolve import folder_resolver, hub_resolver

__all__ = [
    "Library",
    "LibraryError",
    "LibraryManifest",
    "MemberEntry",
    "MemberSource",
    "build_library",
    "folder_resolver",
    "hub_resolver",
    "load_library",
    "member_from_repo",
    "pull_library",
    "push_library",
    "save_library",
]
