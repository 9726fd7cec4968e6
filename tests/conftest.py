"""Shared fixtures: an isolated ``ZOO_HOME``, the tiny demo zoo (built once, cached), and a local hub serving it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tiny zoo is deterministic, so it is cached between test sessions; a code change that alters it
# changes its fingerprint and it is rebuilt (see zoo.demozoo.build_zoo).
TEST_CACHE = Path(os.environ.get("ZOO_TEST_CACHE", REPO_ROOT / ".zoo" / "test-cache"))

# Every test process (each xdist worker too) gets its own ZOO_HOME, with Prefect's home inside it. This
# must happen before any test module imports Prefect, which reads its settings once at import: set later,
# every session would share ~/.prefect and its SQLite database (and two workers would start temporary
# API servers on one file at the same time).
_HOME = Path(tempfile.mkdtemp(prefix="zoo-tests-"))
os.environ["ZOO_HOME"] = str(_HOME)
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
# Two xdist workers share the cores: each scores with one torch thread (and so do the workers they start).
os.environ["ZOO_TORCH_THREADS"] = "1"
for _key in ("HF_TOKEN", "MLFLOW_TRACKING_URI"):
    os.environ.pop(_key, None)

from zoo.settings import apply_environment  # noqa: E402  (after the environment above)

apply_environment()


@pytest.fixture(scope="session", autouse=True)
def _isolated_home() -> Iterator[Path]:
    """The session's ZOO_HOME (telemetry off, no token), removed at the end."""
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """What a test changes in ``os.environ`` (e.g. a CLI command quietening Prefect) ends with the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tiny_zoo() -> Path:
    """The tiny demo zoo (models, datasets, broken repos) as a folder of hub repos."""
    from zoo.demozoo import build_zoo

    return build_zoo(TEST_CACHE / "demo-zoo-tiny", profile="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_hub(tiny_zoo: Path) -> Iterator[str]:
    """URL of a local hub serving the tiny zoo, for the real huggingface_hub client."""
    from zoo.localhub import serve_in_thread

    with serve_in_thread(tiny_zoo) as url:
        yield url


def catalog_at_version(path: Path, version: int):
    """An open DuckDB connection to a catalog file as migration ``version`` left it (for migration tests:
    the caller writes old rows, closes it, and opens it with ``Catalog`` to migrate the rest)."""
    import duckdb

    from catalog.migrations import available_migrations

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    for number, sql in available_migrations():
        if number <= version:
            con.execute(sql.read_text())
            con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [number, sql.name])
    return con
