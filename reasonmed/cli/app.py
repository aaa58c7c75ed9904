"""The ``reasonmed`` command; each subcommand lives in a module of its own beside this one."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="reasonmed",
    help=(
        "Grow verified medical chain-of-thought datasets (the ReasonMed algorithm).\n\n"
        "Typical first run on the embedded default (SQLite + the bundled simulator):\n\n"
        "  reasonmed db upgrade && reasonmed run ../shared/data/pubmedqa/ori_pqal.json --source pubmedqa"
        " --benchmark-test-ids ../shared/data/pubmedqa/test_ground_truth.json\n\n"
        "Settings come from REASONMED_* environment variables (see `reasonmed config show`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Create, upgrade or downgrade the database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Show and validate settings and the pipeline file.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
