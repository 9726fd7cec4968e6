"""Every ``zoo`` command answers ``--help``, the CLI starts without touching the network, and the suite export works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from flows.cli import app


def _command_paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI tree (typer vendors its own click, so groups are found by duck typing)."""
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, prefix + (name,))
    return paths


def test_every_command_has_help() -> None:
    from typer.testing import CliRunner

    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("hub", "serve") in paths and ("demo-zoo", "build") in paths and ("demo",) in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "hub" in out.stdout and "demo-zoo" in out.stdout


def test_demo_zoo_suite_writes_the_suite_recycle_reads(tiny_zoo: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.eval import read_suite

    out = tmp_path / "suite.jsonl"
    result = CliRunner().invoke(app, ["demo-zoo", "suite", str(tiny_zoo), str(out), "--max-per-task", "2"])
    assert result.exit_code == 0, result.output
    assert read_suite(out) == demo_zoo_suite(tiny_zoo, max_per_task=2)
    assert {e.split for e in read_suite(out)} == {"held-in", "held-out"}
    missing = CliRunner().invoke(app, ["demo-zoo", "suite", str(tmp_path), str(out)])
    assert missing.exit_code != 0 and "zoo.json" in missing.output


# A valid suite of one example: the commands below fail for other reasons.
ONE_EXAMPLE = '{"prompt": "p", "target": "t", "task": "a", "split": "held-in"}\n'


def _zoo(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The ``zoo`` script's entry point in a fresh process, as a user's shell runs it."""
    code = "import sys; from flows.cli import main; sys.argv[0] = 'zoo'; main()"
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home")}
    env.pop("ZOO_DEBUG", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)


def test_a_bad_suite_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    missing = _zoo("recycle", "--suite", str(tmp_path / "missing.jsonl"), tmp_path=tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "no task suite at" in missing.stderr and "--debug" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(ONE_EXAMPLE + "not json\n")
    malformed = _zoo("recycle", "--suite", str(bad), tmp_path=tmp_path)
    assert malformed.returncode == 1 and f"{bad}:2: not JSON" in malformed.stderr
    assert len(malformed.stderr.strip().splitlines()) == 1 and "Traceback" not in malformed.stderr
    assert not (tmp_path / "home" / "catalog.duckdb").exists()  # refused before the pipeline started
    debug = _zoo("recycle", "--suite", str(bad), "--debug", tmp_path=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_gpu_index_under_the_dask_runner_is_refused_before_anything_starts(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "suite.jsonl"
    good.write_text(ONE_EXAMPLE)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZOO_SHARD_RUNNER", "dask")
    from typer.testing import CliRunner

    pinned = CliRunner().invoke(app, ["recycle", "--suite", str(good), "--device", "cuda:1"])
    assert isinstance(pinned.exception, ValueError)
    assert "device 'cuda:1' names one GPU" in str(pinned.exception) and "'auto' or 'cuda'" in str(pinned.exception)
    assert not (tmp_path / "home" / "catalog.duckdb").exists()


def test_a_failure_inside_a_flow_prints_no_traceback_unless_debug(tmp_path: Path) -> None:
    """Real flows on Prefect's temporary server: an empty catalog has nothing to recycle (one line, exit 1); a base
    model without adapters fails inside the flow, and Prefect's console lines say so without their tracebacks."""
    good = tmp_path / "suite.jsonl"
    good.write_text(ONE_EXAMPLE)
    nothing = _zoo("recycle", "--suite", str(good), "--no-crawl", tmp_path=tmp_path)
    assert nothing.returncode == 1 and "zoo: error: nothing to recycle" in nothing.stderr
    failing = _zoo("recycle", "--suite", str(good), "--no-crawl", "--base-model", "nobody/nothing", tmp_path=tmp_path)
    assert failing.returncode == 1 and "Traceback" not in failing.stderr
    assert "ERROR" in failing.stderr and "no fingerprinted adapters of nobody/nothing" in failing.stderr
    assert failing.stderr.strip().splitlines()[-1].startswith("zoo: error: recycling failed for 1 of 1 base models")


def test_the_quiet_console_handler_drops_the_traceback_only_from_its_own_line() -> None:
    import io
    import logging

    from flows.console_log import OneLineConsoleHandler

    logger = logging.getLogger("zoo-test-one-line")
    quiet, seen = OneLineConsoleHandler(stream=io.StringIO()), []
    after = logging.Handler()
    after.emit = seen.append
    logger.addHandler(quiet)
    logger.addHandler(after)
    try:
        raise ValueError("a broken adapter")
    except ValueError:
        logger.exception("scoring failed")
    finally:
        logger.removeHandler(quiet)
        logger.removeHandler(after)
    printed = quiet.stream.getvalue()
    assert "scoring failed" in printed and "Traceback" not in printed and "a broken adapter" not in printed
    assert seen[0].exc_info is not None  # the next handler (Prefect's API log) still gets the exception


def test_a_hub_that_cannot_be_connected_to_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``zoo crawl`` and ``zoo recycle`` try the endpoint once before anything starts (the crawl would retry it for
    minutes): a closed port and a URL without a scheme are one line each."""
    import socket
    import time

    from typer.testing import CliRunner

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    good = tmp_path / "suite.jsonl"
    good.write_text(ONE_EXAMPLE)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    start = time.monotonic()
    bare = closed.removeprefix("http://")
    for args, url, why in ((["crawl", "--endpoint", closed], closed, "ConnectError"),
                           (["crawl", "--endpoint", bare], bare, "UnsupportedProtocol"),
                           (["recycle", "--suite", str(good), "--endpoint", closed], closed, "ConnectError")):
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, ValueError), result.output
        assert f"cannot connect to the hub at {url} ({why})" in str(result.exception)
    assert time.monotonic() - start < 30
    assert not (tmp_path / "home" / "catalog.duckdb").exists()
