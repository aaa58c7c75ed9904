"""Prompt-aware resume: finished questions whose stored results are not those of the current models and
prompts are reopened, so the next pass re-judges only what their keys lack; nothing is deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select, update

from reasonmed.db.engine import transaction
from reasonmed.db.models import (
    AcceptedPath,
    PathScore,
    Question,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
)
from reasonmed.db.runs_repo import now
from reasonmed.question_state import FINISHED, StageKeys
from reasonmed.roles import RECHECKED_PROMPTS, Origin, Role

STALE_STAGES = RECHECKED_PROMPTS


def _stale_conditions(keys: StageKeys, stages: Sequence[str]) -> list[Any]:
    """Per stage, "this finished question holds results its current (model, prompt) key lacks"."""
    conds: list[ColumnElement[bool]] = []
    if "verify" in stages:
        v = keys.verifier
        conds.append(
            select(ReasoningPath.id)
            .where(
                ReasoningPath.question_id == Question.id,
                ReasoningPath.origin == Origin.GENERATED,
                ~select(Verdict.id)
                .where(
                    Verdict.path_id == ReasoningPath.id,
                    Verdict.verifier_model == v.model,
                    Verdict.prompt_sha256 == v.prompt_sha256,
                )
                .exists(),
            )
            .exists()
        )
    if "rank" in stages:
        r = keys.ranker
        scored = PathScore.__table__.alias("scored")
        conds.append(
            select(scored.c.id)
            .where(
                scored.c.question_id == Question.id,
                ~select(PathScore.id)
                .where(
                    PathScore.path_id == scored.c.path_id,
                    PathScore.ranker_model == r.model,
                    PathScore.prompt_sha256 == r.prompt_sha256,
                )
                .exists(),
            )
            .exists()
        )
    for role in (Role.REFINER, Role.REGENERATOR):
        stage, origin = role.prompt, role.writes
        if stage in stages:
            w = keys.writes(origin)
            written = ReasoningPath.__table__.alias(f"written_{origin}")
            conds.append(
                and_(
                    select(written.c.id)
                    .where(written.c.question_id == Question.id, written.c.origin == origin)
                    .exists(),
                    ~select(ReasoningPath.id)
                    .where(
                        ReasoningPath.question_id == Question.id,
                        ReasoningPath.origin == origin,
                        ReasoningPath.model == w.model,
                        ReasoningPath.prompt_sha256.in_(list(w.prompt_shas) or [""]),
                    )
                    .exists(),
                )
            )
    if "summarize" in stages:
        sm = keys.summarizer
        conds.append(
            select(AcceptedPath.id)
            .where(
                AcceptedPath.question_id == Question.id,
                AcceptedPath.superseded_at.is_(None),
                AcceptedPath.dropped_reason.is_(None),
                ~select(Summary.id)
                .where(
                    Summary.path_id == AcceptedPath.path_id,
                    Summary.summarizer_model == sm.model,
                    Summary.prompt_sha256 == sm.prompt_sha256,
                )
                .exists(),
            )
            .exists()
        )
    return conds


@dataclass(frozen=True)
class Reopened:
    stale: dict[str, int]  # per stage: finished questions its changed key made stale
    question_ids: list[int]  # the questions reopened (now ``resolved``)
    prior_status: dict[int, str] = field(default_factory=dict)  # what each was before (accepted | rejected)


@dataclass(frozen=True)
class QuestionFilter:
    """Which finished questions a re-judging pass may touch; values are bound parameters, never SQL text."""

    question_ids: tuple[int, ...] | None = None
    sources: tuple[str, ...] | None = None
    tiers: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None  # accepted | rejected
    run_ids: tuple[int, ...] | None = None  # the run that decided the outcome


def reopen_stale(
    engine: Engine,
    keys: StageKeys,
    *,
    stages: Sequence[str] = STALE_STAGES,
    where: QuestionFilter | None = None,
    sources: Sequence[str] | None = None,
) -> Reopened:
    """Finished questions whose verdicts, scores or summaries are not those of the current models and
    prompts go back to ``resolved``, so the next pass re-judges what their keys lack and decides again.

    Only finished questions (accepted or rejected) move; nothing is deleted. Returns, per stage, how many
    finished questions that stage made stale (a question can count for several), and ``reopened``.
    """
    unknown = set(stages) - set(STALE_STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(sorted(unknown))} (known: {', '.join(STALE_STAGES)})")
    w = where or QuestionFilter()
    base = [QuestionOutcome.status.in_(FINISHED), Question.is_benchmark_test.is_(False)]
    for column, values in (
        (Question.id, w.question_ids),
        (Question.source, w.sources or sources),
        (QuestionOutcome.tier, w.tiers),
        (QuestionOutcome.status, w.statuses),
        (QuestionOutcome.run_id, w.run_ids),
    ):
        if values:
            base.append(column.in_(list(values)))
    joined = (
        select(Question.id).join(QuestionOutcome, QuestionOutcome.question_id == Question.id).where(*base)
    )
    counts: dict[str, int] = {}
    with transaction(engine) as s:
        conds = _stale_conditions(keys, stages)
        for stage, cond in zip(stages, conds, strict=True):
            counts[stage] = s.execute(
                select(func.count()).select_from(joined.where(cond).subquery())
            ).scalar_one()
        if not conds:
            return Reopened(counts, [])
        prior: dict[int, str] = {
            q: st for q, st in s.execute(joined.add_columns(QuestionOutcome.status).where(or_(*conds)))
        }
        ids = sorted(prior)
        for chunk in range(0, len(ids), 5000):
            s.execute(
                update(QuestionOutcome)
                .where(QuestionOutcome.question_id.in_(ids[chunk : chunk + 5000]))
                .values(status="resolved", updated_at=now()),
                execution_options={"synchronize_session": False},
            )
    return Reopened(counts, ids, prior)


class OutcomeSnapshot(NamedTuple):
    """What a re-judging pass may change of one question."""

    tier: str | None
    status: str
    accepted: tuple[int, ...]  # current accepted path ids, in rank order


def outcome_snapshot(engine: Engine, question_ids: Sequence[int]) -> dict[int, OutcomeSnapshot]:
    out: dict[int, OutcomeSnapshot] = {}
    with engine.connect() as c:
        for i in range(0, len(question_ids), 5000):
            chunk = list(question_ids[i : i + 5000])
            accepted: dict[int, list[int]] = {}
            for qid, pid in c.execute(
                select(AcceptedPath.question_id, AcceptedPath.path_id)
                .where(
                    AcceptedPath.question_id.in_(chunk),
                    AcceptedPath.superseded_at.is_(None),
                    AcceptedPath.dropped_reason.is_(None),
                )
                .order_by(AcceptedPath.question_id, AcceptedPath.rank)
            ):
                accepted.setdefault(qid, []).append(pid)
            for qid, tier, status in c.execute(
                select(QuestionOutcome.question_id, QuestionOutcome.tier, QuestionOutcome.status).where(
                    QuestionOutcome.question_id.in_(chunk)
                )
            ):
                out[qid] = OutcomeSnapshot(tier, status, tuple(accepted.get(qid, ())))
    return out
