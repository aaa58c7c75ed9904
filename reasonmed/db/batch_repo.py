"""Every SQL statement of the Batch API's bookkeeping (``llm/batch.py``): batches, their requests, and the
questions waiting on them.

A request is named by ``custom_id`` (a fingerprint of its body); its rows are numbered by ``attempt``, the
newest being the one that counts. The unique key (custom_id, attempt) is what keeps two workers from sending
the same request twice: only the worker whose insert took the row puts the request in its batch file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, and_, delete, func, select, update

from reasonmed.db.engine import transaction
from reasonmed.db.models import BatchRequest, LLMBatch, QuestionWait
from reasonmed.db.upsert import insert_new, upsert


def _rows(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (its result is a CursorResult)."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def now() -> datetime:
    return datetime.now(UTC)


# Statuses after which the API changes nothing more about a batch (its files are final).
FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """The newest row of one request: where it stands, and what came back once it is back."""

    row_id: int
    custom_id: str
    attempt: int
    status: str  # submitted | completed | failed
    batch_id: int | None
    response: str | None
    error_kind: str | None
    error: str | None
    consumed: bool


@dataclass(frozen=True, slots=True)
class Queued:
    """A request to put in a batch file: its name, attempt and JSONL line."""

    custom_id: str
    attempt: int
    line: bytes


@dataclass(frozen=True, slots=True)
class OpenBatch:
    id: int
    endpoint: str
    remote_id: str | None
    submission_key: str
    status: str
    worker: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RequestResult:
    """What a batch's output or error file says about one request."""

    custom_id: str
    ok: bool
    response: str | None = None  # the chat completion's JSON body (ok)
    error_kind: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def lookup(engine: Engine, custom_ids: Iterable[str]) -> dict[str, StoredRequest]:
    """The newest row of each named request that has one."""
    ids = sorted(set(custom_ids))
    if not ids:
        return {}
    newest = (
        select(BatchRequest.custom_id, func.max(BatchRequest.attempt).label("attempt"))
        .where(BatchRequest.custom_id.in_(ids))
        .group_by(BatchRequest.custom_id)
        .subquery()
    )
    stmt = select(BatchRequest).join(
        newest, and_(BatchRequest.custom_id == newest.c.custom_id, BatchRequest.attempt == newest.c.attempt)
    )
    with engine.connect() as c:
        rows = c.execute(stmt).all()
    return {
        r.custom_id: StoredRequest(
            r.id,
            r.custom_id,
            r.attempt,
            r.status,
            r.batch_id,
            r.response,
            r.error_kind,
            r.error,
            r.consumed_at is not None,
        )
        for r in rows
    }


def consume_failure(engine: Engine, row_id: int) -> bool:
    """Hand a failed request's failure to its question, once: True for the one caller that takes it."""
    with transaction(engine) as s:
        taken = _rows(
            s.execute(
                update(BatchRequest)
                .where(BatchRequest.id == row_id, BatchRequest.consumed_at.is_(None))
                .values(consumed_at=now())
            )
        )
    return bool(taken)


def start_batch(
    engine: Engine,
    *,
    endpoint: str,
    model: str,
    worker: str,
    run_id: int | None,
    queued: Sequence[Queued],
) -> tuple[int, str, list[Queued]] | None:
    """Record a batch about to be uploaded and take its requests' rows; returns (batch id, submission key,
    the requests this worker took), or None when another worker had taken every one of them already."""
    key = uuid.uuid4().hex
    with transaction(engine) as s:
        batch = LLMBatch(
            endpoint=endpoint,
            model=model,
            submission_key=key,
            status="preparing",
            requests=0,
            input_bytes=0,
            completed=0,
            failed=0,
            prompt_tokens=0,
            completion_tokens=0,
            worker=worker,
            run_id=run_id,
            created_at=now(),
        )
        s.add(batch)
        s.flush()
        t = now()
        rows = [
            {
                "custom_id": q.custom_id,
                "attempt": q.attempt,
                "batch_id": batch.id,
                "endpoint": endpoint,
                "status": "submitted",
                "created_at": t,
            }
            for q in queued
        ]
        taken = {
            (cid, att)
            for cid, att in insert_new(
                s, BatchRequest.__table__, rows, ["custom_id", "attempt"], ["custom_id", "attempt"]
            )
        }
        mine = [q for q in queued if (q.custom_id, q.attempt) in taken]
        if not mine:
            s.delete(batch)
            return None
        batch.requests = len(mine)
        batch.input_bytes = sum(len(q.line) for q in mine)
        return batch.id, key, mine


def mark_submitted(
    engine: Engine, batch_id: int, *, remote_id: str, input_file_id: str | None, status: str
) -> None:
    with transaction(engine) as s:
        s.execute(
            update(LLMBatch)
            .where(LLMBatch.id == batch_id)
            .values(remote_id=remote_id, input_file_id=input_file_id, status=status, submitted_at=now())
        )


def abandon_batch(engine: Engine, batch_id: int, error: str) -> int:
    """A batch that never reached the API: its requests' rows go, so the next ask sends them again under the
    same attempt (nothing was spent on them); the batch row stays, with why. Returns the requests freed."""
    with transaction(engine) as s:
        freed = _rows(
            s.execute(
                delete(BatchRequest).where(
                    BatchRequest.batch_id == batch_id, BatchRequest.status == "submitted"
                )
            )
        )
        s.execute(
            update(LLMBatch)
            .where(LLMBatch.id == batch_id)
            .values(status="abandoned", error=error[:2000], finished_at=now(), collected_at=now())
        )
    return freed


def fail_unsent(
    engine: Engine, *, endpoint: str, custom_id: str, attempt: int, kind: str, error: str
) -> None:
    """A request no batch can carry (its line alone exceeds the file limit): failed, in no batch."""
    with transaction(engine) as s:
        insert_new(
            s,
            BatchRequest.__table__,
            [
                {
                    "custom_id": custom_id,
                    "attempt": attempt,
                    "batch_id": None,
                    "endpoint": endpoint,
                    "status": "failed",
                    "error_kind": kind,
                    "error": error[:2000],
                    "created_at": now(),
                    "finished_at": now(),
                }
            ],
            ["custom_id", "attempt"],
            ["id"],
        )


def open_batches(engine: Engine, endpoint: str) -> list[OpenBatch]:
    """The endpoint's batches whose results are not stored yet (including ones still being prepared)."""
    stmt = (
        select(LLMBatch)
        .where(LLMBatch.endpoint == endpoint, LLMBatch.collected_at.is_(None))
        .order_by(LLMBatch.id)
    )
    with engine.connect() as c:
        return [
            OpenBatch(r.id, r.endpoint, r.remote_id, r.submission_key, r.status, r.worker, r.created_at)
            for r in c.execute(stmt).all()
        ]


def set_status(
    engine: Engine,
    batch_id: int,
    status: str,
    *,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"status": status}
    if status in FINAL_STATUSES:
        values |= {"output_file_id": output_file_id, "error_file_id": error_file_id, "finished_at": now()}
    if error is not None:
        values["error"] = error[:2000]
    with transaction(engine) as s:
        s.execute(
            update(LLMBatch).where(LLMBatch.id == batch_id, LLMBatch.collected_at.is_(None)).values(**values)
        )


def store_lines(engine: Engine, batch_id: int, results: Sequence[RequestResult]) -> tuple[int, int]:
    """Store what a final batch's file lines say about its requests (one transaction per call, so a file
    is stored in chunks); only requests still ``submitted`` are written, so storing twice (two workers, or a
    collection cut short and done again) changes nothing. Returns (completed, failed) written."""
    if not results:
        return 0, 0
    t = now()
    done = failed = p_tok = c_tok = 0
    with transaction(engine) as s:
        for r in results:
            written = _rows(
                s.execute(
                    update(BatchRequest)
                    .where(
                        BatchRequest.batch_id == batch_id,
                        BatchRequest.custom_id == r.custom_id,
                        BatchRequest.status == "submitted",
                    )
                    .values(
                        status="completed" if r.ok else "failed",
                        response=r.response,
                        error_kind=r.error_kind,
                        error=(r.error or "")[:2000] or None,
                        prompt_tokens=r.prompt_tokens,
                        completion_tokens=r.completion_tokens,
                        finished_at=t,
                    )
                )
            )
            if not written:
                continue
            done += r.ok
            failed += not r.ok
            p_tok += r.prompt_tokens or 0
            c_tok += r.completion_tokens or 0
        s.execute(
            update(LLMBatch)
            .where(LLMBatch.id == batch_id)
            .values(
                completed=LLMBatch.completed + done,
                failed=LLMBatch.failed + failed,
                prompt_tokens=LLMBatch.prompt_tokens + p_tok,
                completion_tokens=LLMBatch.completion_tokens + c_tok,
            )
        )
    return done, failed


def close_batch(
    engine: Engine,
    batch_id: int,
    *,
    unanswered_kind: str,
    unanswered_error: str,
    price_per_mtok: tuple[float | None, float | None, float],
) -> int:
    """After its files are stored: the requests no line answered fail with ``unanswered_kind``, and the batch
    is collected, its cost its tokens at (input, output $ per million tokens) times the batch share.
    Returns the requests failed here."""
    t = now()
    price_in, price_out, share = price_per_mtok
    with transaction(engine) as s:
        unanswered = _rows(
            s.execute(
                update(BatchRequest)
                .where(BatchRequest.batch_id == batch_id, BatchRequest.status == "submitted")
                .values(
                    status="failed", error_kind=unanswered_kind, error=unanswered_error[:2000], finished_at=t
                )
            )
        )
        batch = s.get(LLMBatch, batch_id, with_for_update=True)
        if batch is None or batch.collected_at is not None:
            return unanswered
        batch.failed += unanswered
        batch.collected_at = t
        if price_in is not None or price_out is not None:
            batch.cost_usd = (
                (batch.prompt_tokens * (price_in or 0.0) + batch.completion_tokens * (price_out or 0.0))
                / 1e6
                * share
            )
    return unanswered


def count_open(engine: Engine, *, run_id: int | None = None) -> int:
    """Batches submitted and not collected yet (those of ``run_id`` only, if given)."""
    stmt = select(func.count()).select_from(LLMBatch).where(LLMBatch.collected_at.is_(None))
    if run_id is not None:
        stmt = stmt.where(LLMBatch.run_id == run_id)
    with engine.connect() as c:
        return int(c.execute(stmt).scalar_one())


# --------------------------------------------------------------------------- questions waiting


def mark_waiting(engine: Engine, question_id: int, *, stage: str, run_id: int | None) -> None:
    """The question waits on batch results at ``stage``: the run ``run_id`` does not claim it again."""
    with transaction(engine) as s:
        upsert(
            s,
            QuestionWait.__table__,
            [{"question_id": question_id, "stage": stage, "run_id": run_id, "since": now()}],
            ["question_id"],
            ["stage", "run_id", "since"],
        )


def release_waits(engine: Engine, run_id: int) -> list[int]:
    """Let the run take again the questions it saw wait (it has waited for their batches); their ids."""
    with transaction(engine) as s:
        return sorted(
            s.execute(
                update(QuestionWait)
                .where(QuestionWait.run_id == run_id)
                .values(run_id=None)
                .returning(QuestionWait.question_id)
            ).scalars()
        )


def waiting_in_run(engine: Engine, run_id: int) -> list[int]:
    """The questions that waited on batch results in ``run_id`` (and have not gone on since)."""
    with engine.connect() as c:
        return list(
            c.execute(
                select(QuestionWait.question_id)
                .where(QuestionWait.run_id == run_id)
                .order_by(QuestionWait.question_id)
            ).scalars()
        )


def stale_after(created_at: datetime, grace_s: float) -> bool:
    """A batch still ``preparing`` this long after its row was written was left by a worker that died."""
    when = (
        created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    )  # SQLite: naive UTC
    return now() - when > timedelta(seconds=grace_s)


def list_open(engine: Engine, limit: int = 1000) -> list[dict[str, Any]]:
    """Batches not collected yet, oldest first, as the run's artifact shows them."""
    stmt = (
        select(
            LLMBatch.id.label("batch_id"),
            LLMBatch.endpoint,
            LLMBatch.remote_id,
            LLMBatch.status,
            LLMBatch.requests,
            LLMBatch.run_id,
            LLMBatch.created_at,
        )
        .where(LLMBatch.collected_at.is_(None))
        .order_by(LLMBatch.id)
        .limit(limit)
    )
    with engine.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(stmt)]
    for row in rows:
        row["created_at"] = str(row["created_at"])  # the artifact's table holds JSON values
    return rows
