"""``reasonmed serve``: every deployment of deploy/prefect.yaml served from one process.

For a single machine: no work pool and no worker to run, the schedule (the nightly run) and manual
runs from the UI execute as subprocesses of this command. Several machines use the work pool instead
(``prefect deploy --all --prefect-file deploy/prefect.yaml`` plus a worker per machine).

Serving needs a Prefect server that outlives this process: without one Prefect would start a temporary
server that vanishes, schedule, runs and logs with it, when the command stops; so it refuses to start.
The Prefect settings a worker's runs get from the work pool's ``job_variables.env`` in the same file
(e.g. shipping ``reasonmed`` log lines to the UI) are given to the served runs as temporary settings.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.text import Text

from reasonmed.cli.app import OPERATE, app
from reasonmed.cli.common import err_console
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.mistake import Mistake
from reasonmed.redact import redact

if TYPE_CHECKING:
    from prefect.settings import Setting

NO_API = (
    "no Prefect API to serve on: start one (`prefect server start`) and set PREFECT_API_URL, e.g. "
    "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` (see deploy/README.md)"
)


def require_prefect_api() -> str:
    """The configured API URL (environment, profile or prefect.toml); a Mistake when there is none."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise Mistake(NO_API)
    return str(url)


def pool_settings(prefect_file: Path) -> dict[Setting, Any]:
    """The Prefect settings among the deployments' ``job_variables.env`` (what workers give their runs)."""
    import prefect.settings

    data = yaml.safe_load(prefect_file.read_text()) or {}
    env: dict[str, Any] = {}
    for spec in data.get("deployments") or []:
        env.update(((spec.get("work_pool") or {}).get("job_variables") or {}).get("env") or {})
    return {
        getattr(prefect.settings, k): v
        for k, v in env.items()
        if k.startswith("PREFECT_") and hasattr(prefect.settings, k)
    }


_DEFAULT_FILE = Path(str(resources.files("reasonmed.deploy") / "prefect.yaml"))  # shipped in the package


@app.command("serve", rich_help_panel=OPERATE)
def serve(
    prefect_file: Annotated[
        Path,
        typer.Option(
            "--prefect-file", metavar="FILE", help="Deployments to serve (the file `prefect deploy` reads)."
        ),
    ] = _DEFAULT_FILE,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", metavar="NAME", help="Serve only this deployment (repeatable), e.g. --only nightly."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(callback=in_range(1), help="Most flow runs executing at once in this process."),
    ] = None,
) -> None:
    """Serve the deployments (nightly, build, export, ingest, eval, score, report) until stopped (Ctrl-C).

    Needs a Prefect API (PREFECT_API_URL, see deploy/README.md); the nightly schedule is paused again
    when this process stops.
    """
    require_prefect_api()
    if not prefect_file.is_file():
        err_console.print(Text.assemble(("error:", "red"), " ", safe_text(f"{prefect_file}: no such file")))
        raise typer.Exit(1)
    from prefect.settings import temporary_settings

    from reasonmed.flows.deployments import serve_all  # Prefect is imported only for this command

    try:
        with temporary_settings(updates=pool_settings(prefect_file)):
            serve_all(prefect_file, names=only, limit=limit)
    except ValueError as exc:
        err_console.print(Text.assemble(("error:", "red"), " ", safe_text(redact(str(exc)))))
        raise typer.Exit(1) from None
