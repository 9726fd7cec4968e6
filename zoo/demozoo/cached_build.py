"""Build a folder once: into a temporary sibling, renamed into place when complete, behind a lock.

A crash never leaves a half-built folder that looks finished; a marker (``.zoo-build.json``) holds the
fingerprint of what was built, and a later call with the same fingerprint returns at once. A lock file
beside the folder serialises concurrent builders (parallel test workers) of the same folder. The demo
zoo and the converted base model are both built this way.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.demozoo.publish import write_json

MARKER = ".zoo-build.json"


def build_once(out_dir: Path, wanted: dict, build: Callable[[Path], None]) -> Path:
    """Run ``build(staging)`` and swap the result in as ``out_dir``, unless ``wanted`` was built there already."""
    out_dir = Path(out_dir).resolve()
    if is_built(out_dir, wanted):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with locked(out_dir.parent / f".{out_dir.name}.lock"):
        if is_built(out_dir, wanted):  # another process finished it while we waited
            return out_dir
        staging = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            started = time.monotonic()
            build(staging)
            write_json(staging / MARKER, {**wanted, "seconds": round(time.monotonic() - started, 1)})
            swap_in(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def is_built(out_dir: Path, wanted: dict) -> bool:
    try:
        marker = json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all(marker.get(k) == v for k, v in wanted.items())


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished build with renames only."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
