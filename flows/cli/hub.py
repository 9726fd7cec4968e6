"""``zoo hub``: serve a folder of repos through the Hugging Face hub API (offline crawls, air-gapped mirrors)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="A local Hugging Face hub serving a folder of repos (read-only unless --writable).",
                  no_args_is_help=True)


@app.command()
def serve(
    directory: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Folder of repos: ORG/NAME/... models, datasets/ORG/NAME/... datasets."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8800, help="Port to listen on (0 picks a free one)."),
    rate_limit: float | None = typer.Option(None, help="Fault: requests per second accepted; the excess gets 429."),
    error_rate: float = typer.Option(0.0, help="Fault: fraction of requests answered 500/502/503."),
    latency_ms: float = typer.Option(0.0, help="Fault: milliseconds added to every answer."),
    truncate_rate: float = typer.Option(0.0, help="Fault: fraction of file downloads cut short."),
    seed: int = typer.Option(0, help="Seed of the fault RNG (reproducible faults)."),
    page_size: int = typer.Option(1000, help="Entries per listing page (Link pagination)."),
    realistic: bool = typer.Option(
        False, "--realistic",
        help="As strict as huggingface.co: CDN redirects for LFS files, 401 for missing repos, private repos "
             "hidden from all but --owner-token, gates, renames, listings that move unless sorted, and the "
             "anonymous/free quotas per window (see --window-s).",
    ),
    owner_token: str | None = typer.Option(
        None, envvar="ZOO_HUB_OWNER_TOKEN", show_default=False,
        help="With --realistic: the token of the account owning the private repos (\"private\": true in "
             ".hub.json), the only one that sees them (and the write token, if any).",
    ),
    window_s: float = typer.Option(300.0, min=1.0, help="With --realistic: length of a rate-limit window in seconds."),
    writable: bool = typer.Option(
        False, "--writable", help="Accept pushes (create repo, commit) from clients with a token."
    ),
    write_token: str | None = typer.Option(
        None, envvar="ZOO_HUB_WRITE_TOKEN", show_default=False,
        help="With --writable: the only token allowed to push (default: any non-empty token, on loopback only). "
             "Prefer the environment variable: a command line is visible to other users in ps.",
    ),
) -> None:
    """Serve DIRECTORY until interrupted; prints the URL and the HF_ENDPOINT line to use."""
    from zoo.localhub import Faults, Quota, Realism, run_server
    from zoo.localhub.server import check_write_access

    try:
        faults = Faults(
            rate_limit=rate_limit, error_rate=error_rate, latency_ms=latency_ms, truncate_rate=truncate_rate, seed=seed
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    write_token = write_token if writable else None
    try:
        check_write_access(host, writable, write_token)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--writable") from err
    owners = frozenset({owner_token} if owner_token else ())
    realism = Realism(window_s, Quota(), Quota(api=1000, resolvers=5000), owner_tokens=owners) if realistic else None
    run_server(directory, faults, host, port, page_size=page_size, announce=typer.echo, writable=writable,
               write_token=write_token, realism=realism)
