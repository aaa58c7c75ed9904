"""``reasonmed serve``: every deployment of deploy/prefect.yaml served from one process.

For a single machine: no work pool and no worker to run, the schedule (the nightly run) and manual
runs from the UI execute as subprocesses of this command. Several machines use the work pool instead
(``prefect deploy --all --prefect-file deploy/prefect.yaml`` plus a worker per machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reasonmed.cli.app import OPERATE, app
from reasonmed.cli.common import err_console

_DEFAULT_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prefect.yaml"


@app.command("serve", rich_help_panel=OPERATE)
def serve(
    prefect_file: Annotated[
        Path, typer.Option("--prefect-file", metavar="FILE", help="Deployments to serve (the file `prefect deploy` reads).")
    ] = _DEFAULT_FILE,
    only: Annotated[
        list[str] | None, typer.Option("--only", metavar="NAME", help="Serve only this deployment (repeatable), e.g. --only nightly.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Most flow runs executing at once in this process.")] = None,
) -> None:
    """Serve the nightly, build, export and ingest deployments until stopped (Ctrl-C).

    Needs a Prefect API (PREFECT_API_URL, see deploy/README.md); the nightly schedule is paused again
    when this process stops.
    """
    if not prefect_file.is_file():
        err_console.print(f"[red]error:[/red] {prefect_file}: no such file")
        raise typer.Exit(1)
    from flows.deployments import serve_all  # Prefect is imported only for this command

    try:
        serve_all(prefect_file, names=only, limit=limit)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
