"""Settings come from the environment, the token never shows, telemetry is off."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zoo.settings import PUBLIC_HUB, TELEMETRY_OFF, apply_environment, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ("ZOO_HOME", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    settings = load_settings()
    assert settings.home == tmp_path / ".zoo"
    assert settings.hf_endpoint == PUBLIC_HUB
    assert settings.hf_token is None
    assert settings.catalog_path.parent == settings.home


def test_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset or 0: torch's own default (every core); a count is kept; a negative one is refused by name."""
    monkeypatch.delenv("ZOO_TORCH_THREADS", raising=False)
    assert load_settings().torch_threads is None
    monkeypatch.setenv("ZOO_TORCH_THREADS", "0")
    assert load_settings().torch_threads is None
    monkeypatch.setenv("ZOO_TORCH_THREADS", "3")
    assert load_settings().torch_threads == 3
    monkeypatch.setenv("ZOO_TORCH_THREADS", "-1")
    with pytest.raises(ValueError, match="ZOO_TORCH_THREADS"):
        load_settings()


def test_environment_overrides_and_token_stays_out_of_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    settings = load_settings()
    assert settings.home == tmp_path / "home"
    assert settings.hf_endpoint == "http://127.0.0.1:9"
    assert settings.hf_token == "hf_secret_value"
    assert "hf_secret_value" not in repr(settings)
    assert "hf_secret_value" not in str(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:mlflow_secret@mlflow.example")
    assert "mlflow_secret" not in repr(load_settings())

    from tasks.hub import hub_from_settings

    hub = hub_from_settings()  # what the recycling tasks receive as a parameter
    assert hub.token == "hf_secret_value" and hub.cache_dir == tmp_path / "home" / "hub-cache"
    assert "hf_secret_value" not in repr(hub)


def test_telemetry_is_off_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in TELEMETRY_OFF:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    apply_environment()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_shard_runner_and_dask_workers_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("ZOO_SHARD_RUNNER", "ZOO_DASK_WORKERS"):
        monkeypatch.delenv(key, raising=False)
    settings = load_settings()
    assert (settings.shard_runner, settings.dask_workers) == ("inline", 0)  # 0: one worker per GPU, or 2
    monkeypatch.setenv("ZOO_SHARD_RUNNER", " Dask ")
    monkeypatch.setenv("ZOO_DASK_WORKERS", "4")
    assert (load_settings().shard_runner, load_settings().dask_workers) == ("dask", 4)
    monkeypatch.setenv("ZOO_SHARD_RUNNER", "ray")
    with pytest.raises(ValueError, match=r"ZOO_SHARD_RUNNER=ray: must be one of inline, dask"):
        load_settings()
    monkeypatch.setenv("ZOO_SHARD_RUNNER", "dask")
    for bad, why in (("two", "must be a whole number"), ("-1", "must be at least 0")):
        monkeypatch.setenv("ZOO_DASK_WORKERS", bad)
        with pytest.raises(ValueError, match=f"ZOO_DASK_WORKERS={bad}: {why}"):
            load_settings()
