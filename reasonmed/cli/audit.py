"""``reasonmed audit`` (the audit views as tables) and ``reasonmed report`` (HTML + PNG figures)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from reasonmed.audit_freshness import as_of_lines
from reasonmed.cli.app import INSPECT, app
from reasonmed.cli.choices import AuditView
from reasonmed.cli.common import console, engine_from_settings
from reasonmed.cli.outputs import check_out
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.csv_cells import write_csv
from reasonmed.db import audit_repo, audit_rollups, migrate
from reasonmed.mistake import Mistake

# The views `reasonmed audit` shows by default, with the columns worth a terminal's width.
KEY_VIEWS: dict[str, list[str]] = {
    "audit_tier_distribution": [
        "run_id",
        "tier",
        "questions",
        "accepted",
        "resolved",
        "rejected",
        "accepted_paths",
        "share",
    ],
    "audit_verifier_accuracy": ["model", "temperature", "source", "origin", "paths", "correct", "accuracy"],
    "audit_refinement_success": [
        "stage",
        "model",
        "paths_written",
        "verified",
        "reverified_correct",
        "success_rate",
        "kept",
    ],
    "audit_rejected_questions": [
        "question_id",
        "source",
        "source_id",
        "tier",
        "n_correct",
        "rejection_reason",
    ],
    "audit_token_usage": [
        "day",
        "stage",
        "model",
        "calls",
        "failed_calls",
        "total_tokens",
        "cost_usd",
        "mean_latency_ms",
        "p95_latency_ms",
    ],
    "audit_verifier_disagreements": [
        "question_id",
        "path_id",
        "model",
        "verifier_model",
        "answer_key",
        "extracted_answer",
        "verifier_answer",
        "answer_guard",
        "disagreement",
        "current_verdict",
    ],
    "audit_set_aside": [
        "question_id",
        "source",
        "source_id",
        "stage",
        "failures",
        "last_error_kind",
        "last_error",
        "set_aside_at",
    ],
}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def rich_table(
    title: str, rows: list[dict[str, Any]], columns: list[str] | None = None, *, total: int | None = None
) -> Table:
    cols = columns or (list(rows[0]) if rows else [])
    shown = f"{len(rows)} of {total}" if total is not None and total > len(rows) else str(len(rows))
    table = Table(title=f"{title} ({shown} rows)", title_justify="left")
    for c in cols:
        table.add_column(
            c,
            overflow="fold",
            justify="right" if rows and isinstance(rows[0].get(c), int | float) else "left",
        )
    for r in rows:
        table.add_row(*(safe_text(_fmt(r.get(c))) for c in cols))
    return table


def _refresh(engine: Engine, *, say: bool) -> None:
    """Recompute the rolled-up views (Postgres) before reading them; a role that may not is told who may.
    ``say``: print what was refreshed (not into CSV or JSON output)."""
    try:
        states = audit_rollups.refresh_rollups(engine)
    except audit_rollups.RefreshRefused as exc:
        raise Mistake(str(exc)) from exc
    for s in states if say else []:
        console.print(safe_text(f"refreshed {s.view}: {s.rows:,} rows in {s.refresh_s:.1f} s"))


def _print_as_of(engine: Engine, views: list[str]) -> None:
    """Say how current the rolled-up views among ``views`` are (nothing on SQLite: its views are live)."""
    states = [s for s in audit_rollups.rollup_states(engine) if s.view in views]
    for line in as_of_lines(states, datetime.now(UTC)):
        console.print(safe_text(line))


class AuditFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _csv(rows: list[dict[str, Any]]) -> str:
    """One view as CSV; its cells are data to a spreadsheet (``reasonmed.csv_cells``)."""
    buf = io.StringIO()
    if rows:
        write_csv(buf, list(rows[0]), rows)
    return buf.getvalue()


RefreshOption = Annotated[
    bool,
    typer.Option(
        "--refresh",
        help="recompute the rolled-up views (audit_token_usage, audit_verifier_accuracy; Postgres) first",
    ),
]


@app.command("audit", rich_help_panel=INSPECT)
def audit(
    view: Annotated[AuditView | None, typer.Option("--view", help="one view, all columns")] = None,
    limit: Annotated[int, typer.Option("--limit", callback=in_range(1), help="rows per view")] = 50,
    fmt: Annotated[
        AuditFormat, typer.Option("--format", help="table (terminal), csv (one view: needs --view) or json")
    ] = AuditFormat.table,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="overrides REASONMED_DATABASE_URL")
    ] = None,
    refresh: RefreshOption = False,
) -> None:
    """Print the audit views (tiers, verifier accuracy and disagreements, refinement, rejections, tokens, set-aside) as tables."""
    view = None if view is None else str(view)
    if fmt is AuditFormat.csv and view is None:
        raise Mistake(f"--format csv writes one view: add --view NAME ({', '.join(audit_repo.AUDIT_VIEWS)})")
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    if refresh:
        _refresh(engine, say=fmt is AuditFormat.table)
    if fmt is not AuditFormat.table:
        names = [view] if view is not None else list(KEY_VIEWS)
        data = {name: audit_repo.view_rows(engine, name, limit=limit) for name in names}
        typer.echo(
            _csv(data[names[0]]) if fmt is AuditFormat.csv else json.dumps(data, indent=2, default=str),
            nl=False,
        )
        if fmt is AuditFormat.json:
            typer.echo("")
        return
    if view is not None:
        rows = audit_repo.view_rows(engine, view, limit=limit)
        console.print(rich_table(view, rows, total=audit_repo.count_rows(engine, view)))
        _print_as_of(engine, [view])
        return
    for name, cols in KEY_VIEWS.items():
        rows = audit_repo.view_rows(engine, name, limit=limit)
        shown = [c for c in cols if not rows or c in rows[0]]  # columns withheld from the role are left out
        console.print(rich_table(name, rows, shown, total=audit_repo.count_rows(engine, name)))
    why = audit_repo.rejections_by_reason(engine)["paths"]
    console.print(rich_table("audit_rejected_paths by why (see --view audit_rejected_paths)", why))
    _print_as_of(engine, list(KEY_VIEWS))


@app.command("report", rich_help_panel=INSPECT)
def report(
    out: Annotated[Path, typer.Option("--out", help="folder for index.html and the PNG figures")] = Path(
        "report"
    ),
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="overrides REASONMED_DATABASE_URL")
    ] = None,
    refresh: RefreshOption = False,
) -> None:
    """Write the audit report: index.html with tier, accuracy, path-length, rejection and token figures."""
    from reasonmed.report.service import write_report

    check_out(out)
    if out.exists() and not out.is_dir():
        raise Mistake(f"--out {out} is an existing file; give a folder for index.html and the figures")
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    if refresh:
        _refresh(engine, say=True)
    result = write_report(engine, out)
    console.print(safe_text(f"report written to {result.index} ({len(result.figures)} figures)"))
