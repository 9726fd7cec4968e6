"""Shared fixtures: an isolated ``ZOO_HOME``, the tiny demo zoo (built once, cached), and a local hub serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tiny zoo is deterministic, so it is cached between test sessions; a code change that alters it
# changes its fingerprint and it is rebuilt (see zoo.demozoo.build_zoo).
TEST_CACHE = Path(os.environ.get("ZOO_TEST_CACHE", REPO_ROOT / ".zoo" / "test-cache"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session gets its own ZOO_HOME, with telemetry off and no token."""
    home = tmp_path_factory.mktemp("zoo-home")
    old = {k: os.environ.get(k) for k in ("ZOO_HOME", "HF_TOKEN", "PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["ZOO_HOME"] = str(home)
    os.environ.pop("HF_TOKEN", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    from zoo.settings import apply_environment

    apply_environment()
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
