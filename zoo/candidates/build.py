"""Building a candidate's folder once, and applying a built candidate to a loaded base model.

A folder is written under a temporary name and renamed into place when complete, so a build killed
mid-way leaves no half folder under the final name and a re-run simply builds it again. Scoring and
serving apply exactly the folder that was built (and is logged and registered), never a rebuild.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from zoo.candidates.context import BuildContext
from zoo.candidates.kinds import Applied, get_kind
from zoo.candidates.spec import CandidateSpec


def write_atomically(folder: Path, write: Callable[[Path], Any]) -> Path:
    """Run ``write(tmp)`` for a sibling temporary folder, then rename it to ``folder`` (kept if it exists)."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, folder)
    except OSError:
        if not folder.is_dir():  # not someone else's complete folder: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_candidate(spec: CandidateSpec, context: BuildContext, candidates_dir: Path) -> Path | None:
    """The candidate's folder under ``candidates_dir`` (``spec.artifact``), built unless it is there already;
    ``None`` for kinds that need no folder."""
    if spec.artifact is None:
        return None
    kind = get_kind(spec.kind)
    return write_atomically(Path(candidates_dir) / spec.artifact, lambda tmp: kind.build(spec, context, tmp))


@contextmanager
def applied(spec: CandidateSpec, candidates_dir: Path, model: nn.Module) -> Iterator[Applied]:
    """``model`` turned into the built candidate for the block (undone on exit)."""
    folder = Path(candidates_dir) / spec.artifact if spec.artifact else None
    if folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"candidate {spec.label} ({spec.key}) has no folder at {folder}: build it first")
    with get_kind(spec.kind).applied(spec, folder, model) as done:
        yield done
