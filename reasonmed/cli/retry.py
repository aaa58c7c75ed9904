"""``reasonmed retry``: put set-aside questions back, so the next run tries them again."""

from __future__ import annotations

from typing import Annotated

import typer

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import Stage
from reasonmed.cli.common import console, engine_from_settings, err_console
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.db import failures_repo, migrate


@app.command("retry", rich_help_panel=PIPELINE)
def retry(
    question: Annotated[
        list[int] | None,
        typer.Option(
            "--question", metavar="ID", callback=in_range(1), help="A set-aside question's id (repeatable)."
        ),
    ] = None,
    stage: Annotated[
        Stage | None, typer.Option("--stage", help="Only questions set aside at this stage.")
    ] = None,
    all_failed: Annotated[
        bool,
        typer.Option(
            "--all-failed", help="Every set-aside question (with --stage: every one set aside there)."
        ),
    ] = False,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """Put set-aside questions back with a fresh attempt budget; the next `reasonmed run` takes them.

    A question is set aside when it failed for good (e.g. its prompt exceeds the model's context) or
    failed REASONMED_QUESTION_ATTEMPTS times; `reasonmed audit --view audit_set_aside` lists them with
    the stage and the last error. Fix the cause (config, endpoint), then put them back.
    """
    if not question and not all_failed:
        err_console.print(
            "error: say which questions: --question ID (repeatable) or --all-failed", markup=False
        )
        raise typer.Exit(2)
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    ids = failures_repo.put_back(
        engine, question_ids=None if all_failed and not question else question, stage=stage
    )
    if not ids:
        console.print("no set-aside question matched; nothing changed")
        return
    shown = ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")
    console.print(
        safe_text(f"put back {len(ids)} question(s): {shown}; the next `reasonmed run` tries them again")
    )
