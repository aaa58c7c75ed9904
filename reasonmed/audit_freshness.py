"""How current the rolled-up audit views are, in words for a terminal or the report: on Postgres
audit_token_usage and audit_verifier_accuracy count the rows committed before their last refresh
(reasonmed.db.audit_rollups), and a reader must be told so."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from reasonmed.db.audit_rollups import RollupState

HOW_TO_REFRESH = (
    "`reasonmed audit --refresh` recomputes them now; every build run and nightly run does at its end"
)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, round(seconds))} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def as_of_lines(states: Iterable[RollupState], now: datetime) -> list[str]:
    """One line per rolled-up view ("counts the rows committed before ..."), then how to refresh; none
    where no view is rolled up (SQLite)."""
    lines = [
        f"{s.view} counts the rows committed before {s.refreshed_at.astimezone(now.tzinfo):%Y-%m-%d %H:%M:%S %Z} "
        f"({_age((now - s.refreshed_at).total_seconds())} ago; {s.rows:,} rows, refreshed in {s.refresh_s:.1f} s)"
        for s in states
    ]
    return [*lines, HOW_TO_REFRESH] if lines else []
