"""``zoo library``: share a routed library through a hub repo (push a saved library folder, pull one back)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Routed libraries as hub repos: push a saved library, pull one back.", no_args_is_help=True)
console = Console()

_TOKEN_HELP = "Hub token (default: HF_TOKEN); sent to the hub only, never printed."
_ENDPOINT_HELP = "Hub URL (default: HF_ENDPOINT, else the public hub)."


def _failures() -> tuple[type[Exception], ...]:
    """What a push or pull can fail with that deserves one line, not a traceback: the hub's answers, the
    network, the library itself, the local disk."""
    import httpx2

    from zoo.library import LibraryError

    return LibraryError, httpx2.HTTPError, OSError, ValueError


@app.command()
def push(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="A saved library (manifest.json, ...)."),
    repo_id: str = typer.Argument(..., help="Model repo to push to, ORG/NAME (created if missing)."),
    private: bool = typer.Option(
        False, "--private", help="Create the repo private (an existing repo keeps its visibility)."
    ),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
    force: bool = typer.Option(
        False, "--force", help="Push into a repo that holds other files but no library (replaces README.md)."
    ),
    token: str | None = typer.Option(None, envvar="HF_TOKEN", show_default=False, help=_TOKEN_HELP),
    endpoint: str | None = typer.Option(None, help=_ENDPOINT_HELP),
) -> None:
    """Check the library in FOLDER (manifest, hashes, members), then upload it with a model card in one commit."""
    from zoo.library import push_library
    from zoo.library.push import DEFAULT_COMMIT_MESSAGE
    from zoo.settings import load_settings

    try:
        sha = push_library(folder, repo_id, token=token, endpoint=endpoint, private=private,
                           commit_message=message or DEFAULT_COMMIT_MESSAGE, force=force)
    except _failures() as err:
        console.print(f"[red]push failed:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(1) from err
    base = (endpoint or load_settings().hf_endpoint).rstrip("/")
    console.print(f"pushed {folder} to {repo_id} at commit [bold]{sha}[/]")
    console.print(f"{base}/{repo_id}/commit/{sha}", soft_wrap=True)


@app.command()
def pull(
    repo_id: str = typer.Argument(..., help="Model repo holding a library, ORG/NAME."),
    directory: Path = typer.Argument(..., file_okay=False, help="Folder to download the library into."),
    revision: str | None = typer.Option(None, help="Branch or commit sha (default: main)."),
    token: str | None = typer.Option(None, envvar="HF_TOKEN", show_default=False, help=_TOKEN_HELP),
    endpoint: str | None = typer.Option(None, help=_ENDPOINT_HELP),
) -> None:
    """Download the library into DIRECTORY and load it, every hash checked (members not copied in: same hub)."""
    from huggingface_hub import HfApi

    from zoo.library import pull_library

    try:
        sha = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision).sha
        library = pull_library(repo_id, sha, token=token, endpoint=endpoint, local_dir=directory)
    except _failures() as err:
        console.print(f"[red]pull failed:[/] {escape(str(err))}", highlight=False)
        raise typer.Exit(1) from err
    m = library.manifest
    console.print(f"pulled {repo_id} at commit [bold]{sha}[/] into {directory}")
    console.print(f"{len(m.members)} experts over {m.base_model}, router {m.router}", highlight=False)
