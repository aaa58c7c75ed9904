"""Which questions are pending and who works on them: claims under a lease, so concurrent workers never
take the same question and a dead worker's questions come back when its lease runs out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, get_args

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Select,
    and_,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from reasonmed.db.engine import transaction
from reasonmed.db.models import Question, QuestionFailure, QuestionOutcome, QuestionWait
from reasonmed.db.runs_repo import now
from reasonmed.question_state import FINISHED


def _pending_filter(
    sources: Sequence[str] | None, run_id: int | None = None, *, real_models: bool = False
) -> ColumnElement[bool]:
    """Training questions not finished and not set aside; with ``run_id``, also not failed in that run.
    With ``real_models``, a question finished only by simulated models is not finished (it is redone)."""
    # questions.finished_by mirrors the FINISHED outcomes (triggers, migration 0011). Written with the
    # literals of ix_questions_pending's predicate, so the planner reads the pending ids from that index.
    unfinished: ColumnElement[bool] = Question.finished_by.is_(None)
    if real_models:
        unfinished = or_(unfinished, Question.finished_by == literal_column("'simulated'"))
    set_aside = select(QuestionFailure.question_id).where(QuestionFailure.set_aside_at.is_not(None))
    conds = [Question.is_benchmark_test.is_(False), unfinished, Question.id.not_in(set_aside)]
    if run_id is not None:
        conds.append(
            Question.id.not_in(
                select(QuestionFailure.question_id).where(QuestionFailure.last_run_id == run_id)
            )
        )
        # Waiting on batch results in this run: taken again only once the run has waited for its batches.
        conds.append(
            Question.id.not_in(select(QuestionWait.question_id).where(QuestionWait.run_id == run_id))
        )
    if sources:
        conds.append(Question.source.in_(list(sources)))
    return and_(*conds)


def count_pending(engine: Engine, sources: Sequence[str] | None = None, *, real_models: bool = False) -> int:
    with engine.connect() as c:
        return c.execute(
            select(func.count())
            .select_from(Question)
            .where(_pending_filter(sources, real_models=real_models))
        ).scalar_one()


def count_simulated_finished(engine: Engine, sources: Sequence[str] | None = None) -> int:
    """Training questions finished only by simulated models: what a run with real models will redo."""
    q = (
        select(func.count())
        .select_from(QuestionOutcome)
        .join(Question, Question.id == QuestionOutcome.question_id)
        .where(
            QuestionOutcome.simulated.is_(True),
            QuestionOutcome.status.in_(FINISHED),
            Question.is_benchmark_test.is_(False),
        )
    )
    if sources:
        q = q.where(Question.source.in_(list(sources)))
    with engine.connect() as c:
        return c.execute(q).scalar_one()


Priority = Literal["fifo", "round-robin"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)


def claim_questions(
    engine: Engine,
    *,
    worker: str,
    limit: int,
    lease_s: float,
    sources: Sequence[str] | None = None,
    priority: str = "fifo",
    run_id: int | None = None,
    real_models: bool = False,
) -> list[int]:
    """Take up to ``limit`` unfinished, unclaimed (or lease-expired) questions for ``worker``.

    One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) on Postgres, so concurrent workers
    never take the same question; on SQLite the single statement is atomic under its write lock.
    A dead worker's questions come back when its lease expires.

    ``priority``: "fifo" takes the lowest ids first; "round-robin" takes them in turn from each source
    (lowest ids of every source first), so a nightly budget advances every source evenly instead of
    finishing one source before starting the next. A round-robin pick whose rows another worker locked
    meanwhile is topped up first-in-first-out, so a claim never comes back empty while work is free.

    Set-aside questions are never taken, nor (with ``run_id``) those that already failed in that run.
    ``real_models``: the run's models are real, so questions finished only by simulated ones are taken.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} (got {priority!r})")
    if limit <= 0:
        return []
    t = now()
    # Held questions are never free, not even to their holder: a run's concurrent shard workers share one
    # worker id and must not take each other's questions.
    free = or_(Question.claimed_by.is_(None), Question.claim_expires_at < t)
    values = {"claimed_by": worker, "claim_expires_at": t + timedelta(seconds=lease_s)}
    ids: list[int] = []
    with transaction(engine) as s:
        if priority == "round-robin":
            ids += _claim(s, engine, _round_robin_pick(sources, free, limit, run_id, real_models), values)
        if len(ids) < limit:
            conds = [_pending_filter(sources, run_id, real_models=real_models), free] + (
                [Question.id.not_in(ids)] if ids else []
            )
            pick = select(Question.id).where(*conds).order_by(Question.id).limit(limit - len(ids))
            ids += _claim(s, engine, pick, values)
    return sorted(ids)


def claim_listed(engine: Engine, *, worker: str, question_ids: Sequence[int], lease_s: float) -> list[int]:
    """Take the listed questions that are unfinished and free (a run taking back the questions it saw wait
    on batches); those another worker holds, or that finished meanwhile, are left out."""
    if not question_ids:
        return []
    t = now()
    free = or_(Question.claimed_by.is_(None), Question.claim_expires_at < t)
    pick = select(Question.id).where(
        Question.id.in_(list(question_ids)), free, Question.finished_by.is_(None)
    )
    values = {"claimed_by": worker, "claim_expires_at": t + timedelta(seconds=lease_s)}
    with transaction(engine) as s:
        return sorted(_claim(s, engine, pick, values))


def _round_robin_pick(
    sources: Sequence[str] | None,
    free: ColumnElement[bool],
    limit: int,
    run_id: int | None,
    real_models: bool,
) -> Select[int]:
    """Ids ordered by their rank within their source, then by source; ``free`` is checked again in the
    outer (locking) select, so Postgres re-tests it on the newest row version of a row it had to wait for."""
    rank = func.row_number().over(partition_by=Question.source, order_by=Question.id)
    ranked = (
        select(Question.id.label("id"), Question.source.label("source"), rank.label("rn"))
        .where(_pending_filter(sources, run_id, real_models=real_models), free)
        .subquery()
    )
    ordered = select(ranked.c.id).order_by(ranked.c.rn, ranked.c.source).limit(limit)
    return select(Question.id).where(Question.id.in_(ordered.scalar_subquery()), free)


def _claim(s: Session, engine: Engine, pick: Select[int], values: dict[str, Any]) -> list[int]:
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(Question)
        .where(Question.id.in_(pick.scalar_subquery()))
        .values(**values)
        .returning(Question.id)
    )
    return list(s.execute(stmt, execution_options={"synchronize_session": False}).scalars())


def renew_claims(engine: Engine, *, worker: str, question_ids: Sequence[int], lease_s: float) -> None:
    """Extend the lease on the worker's ``question_ids``.

    The rows are locked first, in id order: the order in which a batch of stage writes locks them (through
    the outcome trigger, ``db/write_behind.py``). An UPDATE alone locks them in the order it scans the table,
    and with a batch holding some of them, the two deadlocked (seen in the benchmark: Postgres aborts one).
    """
    if not question_ids:
        return
    ids = sorted(question_ids)
    with transaction(engine) as s:
        s.execute(
            select(Question.id)
            .where(Question.claimed_by == worker, Question.id.in_(ids))
            .order_by(Question.id)
            .with_for_update()
        )
        s.execute(
            update(Question)
            .where(Question.claimed_by == worker, Question.id.in_(ids))
            .values(claim_expires_at=now() + timedelta(seconds=lease_s)),
            execution_options={"synchronize_session": False},
        )


def release_claims(engine: Engine, *, worker: str, question_ids: Sequence[int] | None = None) -> None:
    """Release the worker's claims on ``question_ids``, or on every question it holds (``None``)."""
    if question_ids is None:
        with transaction(engine) as s:
            s.execute(
                update(Question)
                .where(Question.claimed_by == worker)
                .values(claimed_by=None, claim_expires_at=None),
                execution_options={"synchronize_session": False},
            )
        return
    if not question_ids:
        return
    with transaction(engine) as s:
        s.execute(
            update(Question)
            .where(Question.claimed_by == worker, Question.id.in_(list(question_ids)))
            .values(claimed_by=None, claim_expires_at=None),
            execution_options={"synchronize_session": False},
        )


@dataclass(frozen=True, slots=True)
class Holder:
    worker: str
    questions: int
    lease_ends: datetime


def live_holders(
    engine: Engine, *, except_worker: str | None = None, sources: Sequence[str] | None = None
) -> list[Holder]:
    """Workers whose lease on pending questions has not run out, with how many they hold and until when."""
    conds = [_pending_filter(sources), Question.claimed_by.is_not(None), Question.claim_expires_at >= now()]
    if except_worker is not None:
        conds.append(Question.claimed_by != except_worker)
    with engine.connect() as c:
        rows = c.execute(
            select(Question.claimed_by, func.count(), func.max(Question.claim_expires_at))
            .where(*conds)
            .group_by(Question.claimed_by)
            .order_by(Question.claimed_by)
        ).all()
    return [
        Holder(w, n, t if t.tzinfo else t.replace(tzinfo=UTC))
        for w, n, t in rows
        if w is not None and t is not None
    ]


def release_holders(engine: Engine, workers: Sequence[str]) -> int:
    """Take back every claim of these workers (known to be dead); returns the questions freed."""
    if not workers:
        return 0
    with transaction(engine) as s:
        result = s.execute(
            update(Question)
            .where(Question.claimed_by.in_(list(workers)))
            .values(claimed_by=None, claim_expires_at=None),
            execution_options={"synchronize_session": False},
        )
        return cast("CursorResult[Any]", result).rowcount or 0  # an UPDATE's result is a CursorResult
