"""SQL for question ingestion: batched idempotent inserts, ingest bookkeeping, benchmark-test marking.

Every write is keyed by a natural unique key (``questions.content_hash``, ``ingest_files.sha256``,
``ingest_errors (ingest_file_id, record_ref)``) with ON CONFLICT DO NOTHING, so re-running an ingest,
or resuming one that was killed, never duplicates a row. Postgres takes rows by COPY into a
session-temporary staging table and one INSERT ... SELECT per batch: far fewer round trips and
less parsing than multi-row VALUES.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.schema import CreateTable

from reasonmed.db import models as orm
from reasonmed.db.models import IngestError, IngestFile, utcnow

QUESTIONS = orm.Question.__table__
IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's bound-parameter limit


class QuestionRow(NamedTuple):
    """One ``questions`` row ready to write; ``options``/``metadata`` are already JSON text."""

    content_hash: str
    source: str
    source_id: str
    split: str
    is_benchmark_test: bool
    question: str
    context: str | None
    options: str
    answer: str
    metadata: str
    ingest_file_id: int
    created_at: datetime


COLUMNS = QuestionRow._fields
_JSON_COLUMNS = ("options", "metadata")


class ErrorRow(NamedTuple):
    ingest_file_id: int
    file_path: str
    record_ref: str
    reason: str
    raw: str | None
    created_at: datetime


class IngestFileState(NamedTuple):
    id: int
    status: str
    source: str
    split: str
    read_options: str | None  # NULL for files ingested before migration 0004


# --------------------------------------------------------------------------- ingest_files


def find_ingest_file(conn: Connection, sha256: str) -> IngestFileState | None:
    row = conn.execute(
        select(
            IngestFile.id, IngestFile.status, IngestFile.source, IngestFile.split, IngestFile.read_options
        ).where(IngestFile.sha256 == sha256)
    ).one_or_none()
    return None if row is None else IngestFileState(*row)


def get_or_create_ingest_file(
    conn: Connection, sha256: str, path: str, source: str, split: str
) -> IngestFileState:
    """The bookkeeping row of a file (by content hash), created as 'running' if it is new."""
    table = IngestFile.__table__
    ins = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    conn.execute(
        ins.values(
            sha256=sha256,
            path=path,
            source=source,
            split=split,
            n_read=0,
            n_inserted=0,
            n_duplicates=0,
            n_rejected=0,
            status="running",
            started_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["sha256"])
    )
    state = find_ingest_file(conn, sha256)
    assert state is not None  # inserted just above, or already there
    return state


def restart_ingest_file(
    conn: Connection,
    file_id: int,
    path: str,
    source: str,
    split: str,
    read_options: str,
    *,
    clear_errors: bool = False,
) -> None:
    """A (re)scan begins: counters restart, since this scan re-reads the whole file.

    ``clear_errors`` drops the file's recorded bad records first: a scan with other read options judges
    every record afresh, so the old reasons would be stale.
    """
    if clear_errors:
        conn.execute(delete(IngestError).where(IngestError.ingest_file_id == file_id))
    conn.execute(
        update(IngestFile)
        .where(IngestFile.id == file_id)
        .values(
            path=path,
            source=source,
            split=split,
            read_options=read_options,
            n_read=0,
            n_inserted=0,
            n_duplicates=0,
            n_rejected=0,
            n_id_conflicts=0,
            status="running",
            error=None,
            started_at=utcnow(),
            finished_at=None,
        )
    )


def add_ingest_counts(
    conn: Connection,
    file_id: int,
    *,
    read: int,
    inserted: int,
    duplicates: int,
    rejected: int,
    id_conflicts: int = 0,
) -> None:
    """Counters move with each committed batch, so a killed ingest shows how far it got."""
    conn.execute(
        update(IngestFile)
        .where(IngestFile.id == file_id)
        .values(
            n_read=IngestFile.n_read + read,
            n_inserted=IngestFile.n_inserted + inserted,
            n_duplicates=IngestFile.n_duplicates + duplicates,
            n_rejected=IngestFile.n_rejected + rejected,
            n_id_conflicts=IngestFile.n_id_conflicts + id_conflicts,
        )
    )


def finish_ingest_file(conn: Connection, file_id: int, *, error: str | None = None) -> None:
    """The file's last word: 'done', or 'failed' with the reason (a failed file is read again next time)."""
    conn.execute(
        update(IngestFile)
        .where(IngestFile.id == file_id)
        .values(status="failed" if error else "done", error=error, finished_at=utcnow())
    )


def ingest_file_outcome(conn: Connection, file_id: int) -> tuple[str, str | None]:
    status, error = conn.execute(
        select(IngestFile.status, IngestFile.error).where(IngestFile.id == file_id)
    ).one()
    return status, error


def stored_hashes(conn: Connection, source: str, source_ids: Iterable[str]) -> dict[str, set[str]]:
    """Content hashes stored under each (source, id): more than one means one id, several questions."""
    ids = list(dict.fromkeys(source_ids))
    found: dict[str, set[str]] = {}
    for i in range(0, len(ids), IN_CHUNK):
        rows = conn.execute(
            select(QUESTIONS.c.source_id, QUESTIONS.c.content_hash).where(
                QUESTIONS.c.source == source, QUESTIONS.c.source_id.in_(ids[i : i + IN_CHUNK])
            )
        )
        for sid, h in rows:
            found.setdefault(sid, set()).add(h)
    return found


# --------------------------------------------------------------------------- questions


def insert_questions(conn: Connection, rows: Sequence[QuestionRow]) -> int:
    """Insert a batch, skipping content hashes already stored; returns how many rows were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _insert_questions_pg(conn, rows)
    return _insert_questions_sqlite(conn, rows)


def _insert_questions_sqlite(conn: Connection, rows: Sequence[QuestionRow]) -> int:
    # JSON columns arrive as text already; bind them as text so they are not encoded twice.
    values = {c: bindparam(c, type_=Text()) if c in _JSON_COLUMNS else bindparam(c) for c in COLUMNS}
    stmt = (
        sqlite_insert(QUESTIONS)
        .values(values)
        .on_conflict_do_nothing(index_elements=["content_hash"])
        .returning(QUESTIONS.c.content_hash)
    )
    return len(conn.execute(stmt, [r._asdict() for r in rows]).all())


_stage_meta = MetaData()
_STAGE = Table(
    "questions_stage",
    _stage_meta,
    Column("content_hash", Text),
    Column("source", Text),
    Column("source_id", Text),
    Column("split", Text),
    Column("is_benchmark_test", Boolean),
    Column("question", Text),
    Column("context", Text),
    Column("options", JSONB),
    Column("answer", Text),
    Column("metadata", JSONB),
    Column("ingest_file_id", BigInteger),
    Column("created_at", DateTime(timezone=True)),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
_COPY_SQL = f"COPY {_STAGE.name} ({', '.join(COLUMNS)}) FROM STDIN"
_FROM_STAGE = (
    pg_insert(QUESTIONS)
    .from_select(list(COLUMNS), select(*(_STAGE.c[c] for c in COLUMNS)))
    .on_conflict_do_nothing(index_elements=["content_hash"])
    .execution_options(preserve_rowcount=True)  # SQLAlchemy reports INSERT rowcounts only when asked
)


def _insert_questions_pg(conn: Connection, rows: Sequence[QuestionRow]) -> int:
    # Session-temporary and emptied at commit; IF NOT EXISTS each time survives rolled-back creations.
    conn.execute(CreateTable(_STAGE, if_not_exists=True))
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)  # Postgres is always reached through psycopg 3 (db.engine)
    with driver.cursor() as cur, cur.copy(_COPY_SQL) as copy:
        for row in rows:
            copy.write_row(row)
    inserted = conn.execute(_FROM_STAGE).rowcount
    conn.execute(_STAGE.delete())  # two batches in one transaction must not see each other's rows
    return inserted


def mark_benchmark_test(conn: Connection, content_hashes: Iterable[str]) -> int:
    """Flag stored questions as benchmark test items (false -> true only); returns how many changed."""
    hashes = list(dict.fromkeys(content_hashes))
    changed = 0
    for i in range(0, len(hashes), IN_CHUNK):
        changed += conn.execute(
            update(orm.Question)
            .where(
                orm.Question.content_hash.in_(hashes[i : i + IN_CHUNK]),
                orm.Question.is_benchmark_test.is_(False),
            )
            .values(is_benchmark_test=True, split="test")
        ).rowcount
    return changed


# --------------------------------------------------------------------------- ingest_errors


def insert_ingest_errors(conn: Connection, rows: Sequence[ErrorRow]) -> int:
    """Record bad records once per (file, ref); returns how many were new."""
    if not rows:
        return 0
    table = IngestError.__table__
    ins = pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)
    stmt = ins.on_conflict_do_nothing(index_elements=["ingest_file_id", "record_ref"]).returning(table.c.id)
    return len(conn.execute(stmt, [r._asdict() for r in rows]).all())


def count_ingest_errors(conn: Connection, file_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(IngestError).where(IngestError.ingest_file_id == file_id)
    ).scalar_one()


__all__ = [
    "COLUMNS",
    "ErrorRow",
    "IngestFileState",
    "QuestionRow",
    "add_ingest_counts",
    "count_ingest_errors",
    "find_ingest_file",
    "finish_ingest_file",
    "get_or_create_ingest_file",
    "insert_ingest_errors",
    "ingest_file_outcome",
    "insert_questions",
    "mark_benchmark_test",
    "restart_ingest_file",
    "stored_hashes",
]
