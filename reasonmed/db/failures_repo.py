"""Every SQL statement about failed and set-aside questions: record a failed attempt, list and put back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, update

from reasonmed.attempts import StageFailure, sets_aside
from reasonmed.db.engine import transaction
from reasonmed.db.models import AcceptedPath, Question, QuestionFailure
from reasonmed.db.runs_repo import now


@dataclass(frozen=True, slots=True)
class RecordedFailure:
    failures: int  # failed attempts of this question at this stage, this one included
    set_aside: bool


def record_failure(
    engine: Engine, question_id: int, failure: StageFailure, *, run_id: int | None, budget: int
) -> RecordedFailure:
    """Count one failed attempt (if it counts) and set the question aside when the rule says so."""
    t = now()
    with transaction(engine) as s:
        row = s.execute(
            select(QuestionFailure)
            .where(QuestionFailure.question_id == question_id, QuestionFailure.stage == failure.stage)
            .with_for_update()
        ).scalar_one_or_none()
        if row is None:
            row = QuestionFailure(question_id=question_id, stage=failure.stage, failures=0, first_failed_at=t)
            s.add(row)
        row.failures = (row.failures or 0) + (1 if failure.counts else 0)
        row.permanent = failure.cls == "permanent"
        row.last_error_kind = failure.kind[:32]
        row.last_error = failure.message
        row.last_run_id = run_id
        row.last_failed_at = t
        aside = sets_aside(failure, row.failures, budget)
        if aside and row.set_aside_at is None:
            row.set_aside_at = t
        return RecordedFailure(row.failures, row.set_aside_at is not None)


@dataclass(frozen=True, slots=True)
class RunFailures:
    set_aside: int  # questions this run set aside
    failed: int  # questions that failed in this run and will be tried again by a later one


def run_failures(engine: Engine, run_id: int) -> RunFailures:
    with engine.connect() as c:
        rows = dict(
            c.execute(
                select(
                    QuestionFailure.set_aside_at.is_not(None),
                    func.count(func.distinct(QuestionFailure.question_id)),
                )
                .where(QuestionFailure.last_run_id == run_id)
                .group_by(QuestionFailure.set_aside_at.is_not(None))
            ).all()
        )
    return RunFailures(set_aside=rows.get(True, 0), failed=rows.get(False, 0))


def list_set_aside(engine: Engine, *, run_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Set-aside questions with their stage, count and last error (newest first)."""
    stmt = (
        select(
            QuestionFailure.question_id,
            Question.source,
            Question.source_id,
            QuestionFailure.stage,
            QuestionFailure.failures,
            QuestionFailure.permanent,
            QuestionFailure.last_error_kind,
            QuestionFailure.last_error,
            QuestionFailure.set_aside_at,
        )
        .join(Question, Question.id == QuestionFailure.question_id)
        .where(QuestionFailure.set_aside_at.is_not(None))
        .order_by(QuestionFailure.set_aside_at.desc(), QuestionFailure.question_id)
        .limit(limit)
    )
    if run_id is not None:
        stmt = stmt.where(QuestionFailure.last_run_id == run_id)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(stmt).mappings()]


def put_back(
    engine: Engine,
    *,
    question_ids: Sequence[int] | None = None,
    stage: str | None = None,
) -> list[int]:
    """Make set-aside questions claimable again with a fresh attempt budget; returns their ids.

    ``question_ids=None`` means every set-aside question (optionally only those set aside at ``stage``).
    A question set aside at summarisation gets its dropped paths back, so their summaries are asked again.
    """
    conds: list[ColumnElement[bool]] = [QuestionFailure.set_aside_at.is_not(None)]
    if question_ids is not None:
        conds.append(QuestionFailure.question_id.in_(list(question_ids)))
    if stage is not None:
        conds.append(QuestionFailure.stage == stage)
    t = now()
    with transaction(engine) as s:
        rows = s.execute(
            update(QuestionFailure)
            .where(*conds)
            .values(set_aside_at=None, failures=0, retried_at=t, last_run_id=None)
            .returning(QuestionFailure.question_id, QuestionFailure.stage),
            execution_options={"synchronize_session": False},
        ).all()
        summarize_ids = sorted({q for q, st in rows if st == "summarize"})
        if summarize_ids:
            s.execute(
                update(AcceptedPath)
                .where(AcceptedPath.question_id.in_(summarize_ids))
                .values(dropped_reason=None),
                execution_options={"synchronize_session": False},
            )
    return sorted({q for q, _ in rows})


def count_set_aside(engine: Engine) -> int:
    with engine.connect() as c:
        return c.execute(
            select(func.count(func.distinct(QuestionFailure.question_id))).where(
                QuestionFailure.set_aside_at.is_not(None)
            )
        ).scalar_one()
