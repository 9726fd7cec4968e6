"""``zoo ui``: the Prefect UI and the MLflow UI of the project home, on loopback, until Ctrl-C.

Both run as child servers in their own process groups (``mlflow server`` runs uvicorn as a grandchild),
so stopping a group stops every process it started and nothing outlives the command. Their output goes
to log files under ``ZOO_HOME/logs`` and is shown when a server fails. ``ServerProcess`` and
``prefect_server`` are also what the tests use to run a real Prefect server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import typer
from rich.console import Console

from zoo.settings import (
    EPHEMERAL_SERVICES_OFF, MLFLOW_UI_PORT, PREFECT_UI_PORT, TELEMETRY_OFF, Settings, load_settings,
)

SERVER_START_TIMEOUT_S = 180.0
console = Console()

# Services a one-machine UI server does without: those the temporary server does without (automations
# among them) and the expiry of paused runs (no flow pauses). The scheduler stays, so that `zoo serve`
# against this server works. A full server switches all of them back on, whatever the environment says.
LEAN_PREFECT_SERVICES = {**EPHEMERAL_SERVICES_OFF, "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false"}
FULL_PREFECT_SERVICES = {key: "true" for key in LEAN_PREFECT_SERVICES}

# Loopback only, never through a proxy that the environment may name.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerProcess:
    """A server in a child process of its own process group, its output in ``log``.

    Starting returns at once so that several servers boot side by side; ``wait_until_healthy`` blocks.
    """

    def __init__(self, name: str, command: list[str], env: dict[str, str], url: str, health: str, log: Path) -> None:
        self.name, self.url, self.health_url, self.log = name, url, url + health, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def ensure_running(self) -> None:
        if self._process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self._process.returncode}:\n{self.log_tail()}")

    def answers(self) -> bool:
        """Whether the health endpoint says OK; raises if the server has exited."""
        self.ensure_running()
        try:
            with _LOOPBACK.open(self.health_url, timeout=5) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) + f"\n(full log: {self.log})"

    def stop(self) -> None:
        stop_process_group(self._process)


def stop_process_group(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM to the group of ``process`` (started with ``start_new_session``), SIGKILL after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_healthy(*servers: ServerProcess, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """Block until every server answers its health check."""
    pending = list(servers)
    deadline = time.monotonic() + timeout_s
    while pending:
        pending = [server for server in pending if not server.answers()]
        if pending and time.monotonic() > deadline:
            names = ", ".join(server.name for server in pending)
            raise TimeoutError(f"{names} did not answer within {timeout_s:.0f} s:\n{pending[0].log_tail()}")
        if pending:
            time.sleep(0.25)


def prefect_server(port: int, prefect_home: Path, log: Path, ui: bool = True, scheduler: bool = True,
                   lean: bool = True) -> ServerProcess:
    """``prefect server start`` on loopback with its own ``PREFECT_HOME`` (and so its own SQLite database);
    ``lean`` switches off the services a UI and a scheduler do not need (automations among them)."""
    url = f"http://127.0.0.1:{port}"
    env = {
        **_server_environment(),
        **(LEAN_PREFECT_SERVICES if lean else FULL_PREFECT_SERVICES),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_UI_ENABLED": str(ui).lower(),
        "PREFECT_UI_API_URL": f"{url}/api",  # the UI calls this server, whatever PREFECT_API_URL says
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": str(scheduler).lower(),
    }
    prefect_home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess("Prefect server", command, env, url, "/api/health", log)


def mlflow_server(port: int, settings: Settings, log: Path) -> ServerProcess:
    """``mlflow server`` on the embedded store, lean: one worker, no job execution (~0.5 GB instead of ~2.5 GB)."""
    url = f"http://127.0.0.1:{port}"
    env = {**_server_environment(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    artifacts = settings.mlflow_artifacts
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", settings.mlflow_uri, "--default-artifact-root", str(artifacts)]
    return ServerProcess("MLflow server", command, env, url, "/health", log)


def _server_environment() -> dict[str, str]:
    """This process's environment, telemetry off unless the user chose, without HF_TOKEN (the hub client's only)."""
    return {**TELEMETRY_OFF, **{key: value for key, value in os.environ.items() if key != "HF_TOKEN"}}


@contextmanager
def running(*servers: ServerProcess) -> Iterator[None]:
    """The servers for the duration of the block, healthy on entry, stopped on exit however it ends."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        wait_until_healthy(*servers)
        yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ui(
    prefect_port: int = typer.Option(PREFECT_UI_PORT,
                                     help="Port of the Prefect server (UI and API); 0 picks a free one."),
    mlflow_port: int = typer.Option(MLFLOW_UI_PORT, help="Port of the MLflow UI; 0 picks a free one."),
    check: bool = typer.Option(False, "--check", help="Start both, wait until both UIs answer, print, stop."),
) -> None:
    """Start the Prefect UI and the MLflow UI of ZOO_HOME on loopback; Ctrl-C stops both."""
    settings = load_settings()
    prefect_port = usable_port(prefect_port, "--prefect-port")
    mlflow_port = usable_port(mlflow_port, "--mlflow-port")
    logs = settings.home / "logs"
    # settings.prefect_home unless the user set PREFECT_HOME (the CLI's apply_environment defaults it so)
    prefect_home = Path(os.environ.get("PREFECT_HOME", settings.prefect_home))
    servers = (
        prefect_server(prefect_port, prefect_home, logs / "prefect-server.log"),
        mlflow_server(mlflow_port, settings, logs / "mlflow-server.log"),
    )
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            with console.status("starting the Prefect server and the MLflow UI"):
                stack.enter_context(running(*servers))
            console.print(f"Prefect UI  [bold]{servers[0].url}[/]")
            console.print(f"MLflow UI   [bold]{servers[1].url}[/]")
            console.print("To run flows against this Prefect server:")
            console.print(f"  export PREFECT_API_URL={servers[0].url}/api", soft_wrap=True)
            if check:
                for server in servers:
                    _check_ui_page(server)
                    console.print(f"{server.name}: UI page answered")
            else:
                console.print("Ctrl-C stops both.")
                _watch(servers)
    except KeyboardInterrupt:
        console.print("stopped")
    except (RuntimeError, TimeoutError) as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _check_ui_page(server: ServerProcess) -> None:
    """A healthy API is not yet a UI: the root page must be the UI's HTML."""
    try:
        with _LOOPBACK.open(server.url + "/", timeout=30) as answer:
            page = answer.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise RuntimeError(f"{server.name} serves no UI page at {server.url}: {err}") from err
    if "<html" not in page.lower():
        raise RuntimeError(f"{server.name} answers at {server.url} but with no HTML page")


def _watch(servers: tuple[ServerProcess, ...]) -> None:
    """Sleep until interrupted; a server that dies ends the command (``ensure_running`` raises)."""
    while True:
        time.sleep(1)
        for server in servers:
            server.ensure_running()


def usable_port(port: int, flag: str) -> int:
    """``port``, or a free one for 0; a port in use is a clear error about the option ``flag``."""
    if port == 0:
        return free_port()
    with socket.socket() as sock:
        # as the servers bind: connections of a server stopped a moment ago (TIME_WAIT) do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise typer.BadParameter(f"port {port} is in use; pick another one", param_hint=flag) from err
    return port


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the servers like Ctrl-C does (they live in their own process groups)."""
    raise KeyboardInterrupt
