"""The audit rollups (migration 0017): on Postgres audit_token_usage and audit_verifier_accuracy read
materialized views, recomputed here, and audit_rollups says as of when. SQLite's views are live: nothing to
refresh, nothing stale.

Refreshed at the end of every build run, in the nightly run and on demand (``reasonmed audit --refresh``):
a full recomputation, because a group's p95 latency cannot be updated from a delta and a retried call's
day can move (the migration's docstring).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

# audit view -> the materialized view it reads (migration 0017)
ROLLUPS: dict[str, str] = {
    "audit_token_usage": "rollup_token_usage",
    "audit_verifier_accuracy": "rollup_verifier_accuracy",
}
# The p95 sorts every group's latencies: with Postgres's default 4 MB each sort of a large group spills to disk.
REFRESH_WORK_MEM = "256MB"
# Postgres errors a role that may not refresh gets: not the owner (42501), a read-only session (25006).
_REFUSED = {"42501", "25006"}


@dataclass(frozen=True, slots=True)
class RollupState:
    """One rolled-up view: every row committed before ``refreshed_at`` is counted, no later one."""

    view: str
    refreshed_at: datetime
    refresh_s: float  # how long that refresh took
    rows: int


class RefreshRefused(RuntimeError):
    """The connected role may not refresh the rollups (an auditor's read-only role, or not their owner)."""


def has_rollups(engine: Engine) -> bool:
    """Postgres keeps rollups; SQLite's audit views are computed on every read."""
    return engine.dialect.name == "postgresql"


_STATES = text("SELECT view_name, refreshed_at, refresh_s, row_count FROM audit_rollups ORDER BY view_name")
_LOCK_STATE = text(
    "SELECT view_name, refreshed_at, refresh_s, row_count FROM audit_rollups WHERE view_name = :view FOR UPDATE"
)
_RECORD = text("""
INSERT INTO audit_rollups (view_name, refreshed_at, refresh_s, row_count)
VALUES (:view, :refreshed_at, :refresh_s, :row_count)
ON CONFLICT (view_name) DO UPDATE SET refreshed_at = excluded.refreshed_at, refresh_s = excluded.refresh_s,
    row_count = excluded.row_count
""")


def rollup_states(engine: Engine) -> list[RollupState]:
    """When each rolled-up view was last refreshed (none on SQLite)."""
    with engine.connect() as conn:
        return [RollupState(v, at, float(s), int(n)) for v, at, s, n in conn.execute(_STATES)]


def refresh_rollups(engine: Engine, *, unless_since: datetime | None = None) -> list[RollupState]:
    """Recompute every rollup; returns their states. Readers keep the previous contents until each refresh
    commits (CONCURRENTLY), and two refreshes of one rollup run one after the other (its state row is
    locked first). ``unless_since``: a rollup already refreshed at or after it is left as it is (the
    nightly run after its build refreshed). SQLite: nothing to do, returns []."""
    if not has_rollups(engine):
        return []
    try:
        return [_refresh(engine, view, relation, unless_since) for view, relation in ROLLUPS.items()]
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _REFUSED:
            raise RefreshRefused(
                "this database role may not refresh the audit rollups; run the refresh as the role that ran "
                f"`reasonmed db upgrade` (their owner): {str(exc.orig).strip()}"
            ) from exc
        raise


def _refresh(engine: Engine, view: str, relation: str, unless_since: datetime | None) -> RollupState:
    with engine.begin() as conn:
        row = conn.execute(_LOCK_STATE, {"view": view}).first()
        if row is not None and unless_since is not None and row.refreshed_at >= unless_since:
            return RollupState(view, row.refreshed_at, float(row.refresh_s), int(row.row_count))
        conn.execute(text(f"SET LOCAL work_mem = '{REFRESH_WORK_MEM}'"))
        # Read before the refresh takes its snapshot: every row committed before this instant is in it.
        as_of = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        t0 = time.perf_counter()
        conn.execute(text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {relation}"))
        rows = int(conn.execute(text(f"SELECT count(*) FROM {relation}")).scalar_one())
        state = RollupState(view, as_of, time.perf_counter() - t0, rows)
        conn.execute(
            _RECORD, {"view": view, "refreshed_at": as_of, "refresh_s": state.refresh_s, "row_count": rows}
        )
        return state
