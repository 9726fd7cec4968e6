"""Every ``zoo`` command answers ``--help``, the CLI starts without touching the network, and the suite export works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
