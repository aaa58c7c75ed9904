"""Idempotent bulk writes that work on both Postgres and SQLite.

Every pipeline write goes through these: a retried task re-sends the same rows and the unique keys
turn the second copy into a no-op (or, for call records, into an update of the same row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# SQLite allows 32,766 bound parameters per statement; stay well below on both engines.
_MAX_PARAMS = 30_000


def _insert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def _chunks(rows: Sequence[Mapping[str, Any]]) -> list[Sequence[Mapping[str, Any]]]:
    if not rows:
        return []
    per = max(1, _MAX_PARAMS // max(1, len(rows[0])))
    return [rows[i : i + per] for i in range(0, len(rows), per)]


def insert_new(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING ``returning``: one row per row that was new, so a caller
    learns the ids it wrote without reading them back, and which of its rows were already there."""
    out: list[tuple[Any, ...]] = []
    for chunk in _chunks(rows):
        stmt = (
            _insert(session, table).values(list(chunk)).on_conflict_do_nothing(index_elements=list(conflict))
        )
        out += map(tuple, session.execute(stmt.returning(*(table.c[c] for c in returning))))
    return out


def insert_ignore(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str]
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING; returns how many rows were new."""
    return len(insert_new(session, table, rows, conflict, conflict[:1]))


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    update: Sequence[str],
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ... ON CONFLICT DO UPDATE of the named columns (for records that a retry completes);
    with ``returning``, those columns of every row written, new or updated.

    Without ``returning`` the statement is compiled once and executed for every row (SQLAlchemy batches
    them into multi-row INSERTs itself): rendering a statement per chunk of literal rows cost more Python
    time than the database spent on them (185k rows: 16.2 s against 3.3 s)."""
    if not rows:
        return []

    def on_conflict_update(ins: postgresql.Insert | sqlite.Insert) -> postgresql.Insert | sqlite.Insert:
        return ins.on_conflict_do_update(
            index_elements=list(conflict), set_={c: ins.excluded[c] for c in update}
        )

    if not returning:
        session.execute(on_conflict_update(_insert(session, table)), list(rows))
        return []
    out: list[tuple[Any, ...]] = []
    for chunk in _chunks(rows):
        stmt = on_conflict_update(_insert(session, table).values(list(chunk)))
        out += map(tuple, session.execute(stmt.returning(*(table.c[c] for c in returning))))
    return out
