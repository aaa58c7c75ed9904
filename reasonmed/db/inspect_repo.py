"""Read-only queries for looking at the data: one question's story, counts before a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from reasonmed.db.claims_repo import _pending_filter
from reasonmed.db.models import (
    AcceptedPath,
    DatasetSample,
    DatasetVersion,
    LLMCall,
    PathScore,
    Question,
    QuestionFailure,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
)


def count_training_questions(engine: Engine, sources: Sequence[str] | None = None) -> int:
    """Questions that may become training samples (benchmark test items never do)."""
    stmt = select(func.count()).select_from(Question).where(Question.is_benchmark_test.is_(False))
    if sources:
        stmt = stmt.where(Question.source.in_(list(sources)))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


# --------------------------------------------------------------------------- one question's story


@dataclass(frozen=True, slots=True)
class PathStory:
    """One reasoning path of a question with everything decided about it."""

    id: int
    path_key: str
    origin: str  # generated | refined | regenerated
    parent_path_id: int | None
    model: str
    temperature: float
    extracted_answer: str | None
    finish_reason: str | None
    completion_tokens: int | None
    verdict: str | None  # correct | error | unparseable; None: not verified (yet)
    verdict_reason: str | None
    rank_score: int | None
    accepted_rank: int | None  # set when the tier pipeline kept the path
    dropped_reason: str | None  # kept, then dropped (its summary never became usable)
    summary: str | None


@dataclass(frozen=True, slots=True)
class ExportedRow:
    version: int
    location: str
    path_id: int


@dataclass(frozen=True, slots=True)
class QuestionStory:
    """A question, its paths, the tier decision and what reached the datasets: ``reasonmed show``."""

    id: int
    source: str
    source_id: str
    split: str
    is_benchmark_test: bool
    question: str
    context: str | None
    options: list[Any]
    answer: str
    tier: str | None
    status: str | None  # resolved | accepted | rejected; None: not processed yet
    n_paths: int
    n_correct: int
    n_accepted: int
    rejection_reason: str | None
    paths: list[PathStory] = field(default_factory=list)
    exported: list[ExportedRow] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def question_story(engine: Engine, question_id: int) -> QuestionStory | None:
    """Everything stored about one question, or ``None`` when there is no such question."""
    with engine.connect() as conn:
        q = conn.execute(select(*Question.__table__.c).where(Question.id == question_id)).mappings().first()
        if q is None:
            return None
        o = (
            conn.execute(
                select(
                    QuestionOutcome.tier,
                    QuestionOutcome.status,
                    QuestionOutcome.n_paths,
                    QuestionOutcome.n_correct,
                    QuestionOutcome.n_accepted,
                    QuestionOutcome.rejection_reason,
                ).where(QuestionOutcome.question_id == question_id)
            )
            .mappings()
            .first()
        )
        verdicts = {
            r.path_id: r
            for r in conn.execute(
                select(Verdict.path_id, Verdict.outcome, Verdict.reason)
                .where(Verdict.question_id == question_id)
                .order_by(Verdict.id)
            )
        }
        scores = {
            r.path_id: r.score
            for r in conn.execute(
                select(PathScore.path_id, PathScore.score)
                .where(PathScore.question_id == question_id)
                .order_by(PathScore.id)
            )
        }
        accepted = {
            r.path_id: r
            for r in conn.execute(
                select(AcceptedPath.path_id, AcceptedPath.rank, AcceptedPath.dropped_reason).where(
                    AcceptedPath.question_id == question_id
                )
            )
        }
        summaries = {
            r.path_id: r.text
            for r in conn.execute(
                select(Summary.path_id, Summary.text)
                .where(Summary.question_id == question_id)
                .order_by(Summary.id)
            )
        }
        paths = conn.execute(
            select(
                ReasoningPath.id,
                ReasoningPath.path_key,
                ReasoningPath.origin,
                ReasoningPath.parent_path_id,
                ReasoningPath.model,
                ReasoningPath.temperature,
                ReasoningPath.extracted_answer,
                ReasoningPath.finish_reason,
                ReasoningPath.completion_tokens,
            )
            .where(ReasoningPath.question_id == question_id)
            .order_by(ReasoningPath.origin != "generated", ReasoningPath.generation_order, ReasoningPath.id)
        ).all()
        exported = conn.execute(
            select(DatasetVersion.version, DatasetVersion.location, DatasetSample.path_id)
            .join(DatasetVersion, DatasetVersion.id == DatasetSample.dataset_version_id)
            .where(DatasetSample.question_id == question_id)
            .order_by(DatasetVersion.version, DatasetSample.path_id)
        ).all()
        failures = [
            dict(r)
            for r in conn.execute(
                select(
                    QuestionFailure.stage,
                    QuestionFailure.failures,
                    QuestionFailure.last_error_kind,
                    QuestionFailure.last_error,
                    QuestionFailure.set_aside_at,
                ).where(QuestionFailure.question_id == question_id)
            ).mappings()
        ]
    story_paths = []
    for p in paths:
        v, a = verdicts.get(p.id), accepted.get(p.id)
        story_paths.append(
            PathStory(
                id=p.id,
                path_key=p.path_key,
                origin=p.origin,
                parent_path_id=p.parent_path_id,
                model=p.model,
                temperature=p.temperature,
                extracted_answer=p.extracted_answer,
                finish_reason=p.finish_reason,
                completion_tokens=p.completion_tokens,
                verdict=v.outcome if v else None,
                verdict_reason=v.reason if v else None,
                rank_score=scores.get(p.id),
                accepted_rank=a.rank if a else None,
                dropped_reason=a.dropped_reason if a else None,
                summary=summaries.get(p.id),
            )
        )
    for f in failures:
        f["set_aside_at"] = f["set_aside_at"].isoformat() if f["set_aside_at"] else None
    return QuestionStory(
        id=q["id"],
        source=q["source"],
        source_id=q["source_id"],
        split=q["split"],
        is_benchmark_test=bool(q["is_benchmark_test"]),
        question=q["question"],
        context=q["context"],
        options=list(q["options"] or []),
        answer=q["answer"],
        tier=o["tier"] if o else None,
        status=o["status"] if o else None,
        n_paths=o["n_paths"] if o else 0,
        n_correct=o["n_correct"] if o else 0,
        n_accepted=o["n_accepted"] if o else 0,
        rejection_reason=o["rejection_reason"] if o else None,
        paths=story_paths,
        exported=[ExportedRow(version=r.version, location=r.location, path_id=r.path_id) for r in exported],
        failures=failures,
    )


# --------------------------------------------------------------------------- before a run (--dry-run)


@dataclass(frozen=True, slots=True)
class CallHistory:
    """Stored calls of one (role, endpoint) over the finished questions: what ``--dry-run`` scales up."""

    role: str
    endpoint: str
    calls: int
    prompt_tokens: float  # mean per call
    completion_tokens: float  # mean per call
    latency_ms: float | None  # mean per call


def call_history(engine: Engine) -> tuple[int, list[CallHistory]]:
    """Finished questions, and per (role, endpoint) their successful calls with mean tokens and latency."""
    finished = select(QuestionOutcome.question_id).where(QuestionOutcome.status.in_(("accepted", "rejected")))
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(finished.subquery())).scalar_one())
        rows = conn.execute(
            select(
                LLMCall.role,
                LLMCall.endpoint,
                func.count(),
                func.avg(LLMCall.prompt_tokens),
                func.avg(LLMCall.completion_tokens),
                func.avg(LLMCall.latency_ms),
            )
            .where(LLMCall.status == "ok", LLMCall.question_id.in_(finished))
            .group_by(LLMCall.role, LLMCall.endpoint)
        ).all()
    return n, [
        CallHistory(
            role=r[0],
            endpoint=r[1],
            calls=int(r[2]),
            prompt_tokens=float(r[3] or 0),
            completion_tokens=float(r[4] or 0),
            latency_ms=None if r[5] is None else float(r[5]),
        )
        for r in rows
    ]


def pending_prompt_chars(engine: Engine, sources: Sequence[str] | None = None) -> float:
    """Mean characters of question + context over the pending questions (prompt size without history)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(
                func.avg(func.length(Question.question) + func.coalesce(func.length(Question.context), 0))
            ).where(_pending_filter(sources))
        ).scalar_one()
    return float(value or 0.0)
