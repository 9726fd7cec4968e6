"""Every ``zoo`` command answers ``--help`` and the CLI starts without touching the network."""

from __future__ import annotations

import subprocess
import sys

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
