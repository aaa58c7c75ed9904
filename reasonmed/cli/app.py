"""The ``reasonmed`` command; each subcommand lives in a module of its own beside this one."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from reasonmed.cli.errors import explain
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import settings_scope
from reasonmed.jobs.startup import MAIN_COMMAND
from reasonmed.version import __version__

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Help panels: the commands grouped by what a user is doing.
PIPELINE = "Pipeline"
INSPECT = "Inspect"
OPERATE = "Operate"

# The order `reasonmed --help` lists them in: a workflow, not the order of imports.
ORDER = (
    "run",
    "ingest",
    "export",
    "retry",
    "rejudge",
    "show",
    "audit",
    "report",
    "eval",
    "score",
    "serve",
    "sim-server",
    "db",
    "config",
)


class _Group(TyperGroup):
    """Every command runs through here: a recognised mistake becomes one line (``reasonmed.cli.errors``)."""

    # ``ctx`` is Typer's Context: since Typer 0.29 a class of its own vendored Click, not ``click.Context``.
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))

    def invoke(self, ctx: Any) -> Any:
        with settings_scope():  # what a command's options override ends with the command
            try:
                return super().invoke(ctx)
            except (
                Exception
            ) as exc:  # Typer's own exits and usage errors are not recognised: they pass through
                explained = explain(exc)
                if explained is None:
                    raise
                typer.echo(safe_text(explained.line).plain, err=True)  # names files, records, servers
                raise typer.Exit(explained.exit_code) from None


app = typer.Typer(
    name="reasonmed",
    cls=_Group,
    help=(
        "Grow verified medical chain-of-thought datasets (the ReasonMed algorithm).\n\n"
        "First run on the embedded default (SQLite + the bundled simulator), from the repository folder:\n\n"
        f"  {MAIN_COMMAND}\n\n"
        "Settings come from REASONMED_* environment variables (see `reasonmed config show`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reasonmed {__version__} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from reasonmed.config import ConfigError, get_settings

    # REASONMED_LOG_LEVEL: the project's own loggers (Prefect's are set by PREFECT_LOGGING_LEVEL).
    level = get_settings().log_level.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"REASONMED_LOG_LEVEL={level.lower()}: expected one of {', '.join(LOG_LEVELS)}")
    logging.getLogger("reasonmed").setLevel(level)


db_app = typer.Typer(
    help="Create, upgrade or downgrade the database schema (Alembic migrations); create the read-only audit role.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Show and validate settings and the pipeline file.", no_args_is_help=True)
app.add_typer(db_app, name="db", rich_help_panel=OPERATE)
app.add_typer(config_app, name="config", rich_help_panel=OPERATE)
