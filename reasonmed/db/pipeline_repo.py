"""Every SQL statement the build pipeline runs: runs, claims, per-question state, and stage writes.

Stage writes (``write_*``) take typed records (``CallRecord``, ``PathRecord``, ...) and run in the caller's
transaction (one per write, or one per batch: ``db/write_behind.py``); the
unique keys (call_key, question + path_key, path + model) make a replay of the same write a no-op, which
is what makes retries and resumed runs safe.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, cast, get_args

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from reasonmed.db.engine import transaction
from reasonmed.db.models import (
    AcceptedPath,
    EndpointPrice,
    LLMCall,
    PathScore,
    PipelineRun,
    PromptTemplateRow,
    Question,
    QuestionFailure,
    QuestionOutcome,
    QuestionWait,
    ReasoningPath,
    Summary,
    Verdict,
    simulated_path,
)
from reasonmed.db.upsert import insert_ignore, insert_new, upsert
from reasonmed.prompts import PromptTemplate
from reasonmed.question_view import QuestionView
from reasonmed.redact import redact, redact_data
from reasonmed.simulated import SUPERSEDED_REASON

FINISHED = ("accepted", "rejected")


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- runs and templates


def create_run(
    engine: Engine,
    *,
    kind: str,
    config_hash: str | None,
    config_snapshot: dict[str, Any] | None,
    parameters: dict[str, Any],
    prefect_flow_run_id: str | None,
) -> int:
    # Credentials never reach the table (the audit role reads it): masked here, the one way in.
    with transaction(engine) as s:
        run = PipelineRun(
            kind=kind,
            status="running",
            config_hash=config_hash,
            config_snapshot=redact_data(config_snapshot),
            parameters=redact_data(parameters),
            stats={},
            prefect_flow_run_id=prefect_flow_run_id,
            host=socket.gethostname(),
            started_at=now(),
            heartbeat_at=now(),
        )
        s.add(run)
        s.flush()
        s.add_all(
            EndpointPrice(
                run_id=run.id,
                endpoint=name,
                model=ep.get("model", ""),
                price_input_per_mtok=ep.get("price_input_per_mtok"),
                price_output_per_mtok=ep.get("price_output_per_mtok"),
                batch_price_factor=ep.get("batch_price_factor") if ep.get("mode") == "batch" else None,
            )
            for name, ep in (config_snapshot or {}).get("endpoints", {}).items()
        )
        return run.id


def finish_run(
    engine: Engine, run_id: int, *, status: str, stats: dict[str, Any], error: str | None = None
) -> None:
    with transaction(engine) as s:
        s.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id)
            .values(
                status=status,
                stats=redact_data(stats),
                error=redact(error) if error else error,
                finished_at=now(),
                heartbeat_at=now(),
            )
        )


def ensure_prompt_templates(engine: Engine, templates: Iterable[PromptTemplate]) -> None:
    """Each template text once (by sha256), re-ask variants included, so every recorded sha resolves to its text."""
    rows = [
        {
            "name": t.name,
            "version": t.version,
            "sha256": t.sha256,
            "text": t.text,
            "variant": t.variant,
            "created_at": now(),
        }
        for t in templates
    ]
    with transaction(engine) as s:
        insert_ignore(s, PromptTemplateRow.__table__, rows, ["sha256"])


# --------------------------------------------------------------------------- prompt-aware resume

STALE_STAGES = ("verify", "rank", "refine", "regenerate", "summarize")


def _stale_conditions(keys: StageKeys, stages: Sequence[str]) -> list[Any]:
    """Per stage, "this finished question holds results its current (model, prompt) key lacks"."""
    conds: list[ColumnElement[bool]] = []
    if "verify" in stages:
        v = keys.verifier
        conds.append(
            select(ReasoningPath.id)
            .where(
                ReasoningPath.question_id == Question.id,
                ReasoningPath.origin == "generated",
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
    for stage, origin in (("refine", "refined"), ("regenerate", "regenerated")):
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


# --------------------------------------------------------------------------- claiming work


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


# --------------------------------------------------------------------------- per-question state


def load_question(engine: Engine, question_id: int) -> QuestionView:
    with engine.connect() as c:
        row = c.execute(select(Question).where(Question.id == question_id)).mappings().one()
    return _question_view(row)


def _question_view(row: Mapping[Any, Any]) -> QuestionView:
    return QuestionView(
        id=row["id"],
        content_hash=row["content_hash"],
        source=row["source"],
        question=row["question"],
        context=row["context"],
        options={label: text for label, text in row["options"]},
        answer=row["answer"],
    )


@dataclass(frozen=True)
class PathRow:
    id: int
    path_key: str
    origin: str
    parent_path_id: int | None
    endpoint: str
    model: str
    temperature: float
    sample_index: int
    generation_order: int
    clean_text: str
    extracted_answer: str | None
    prompt_sha256: str = ""  # the exact variant its call sent


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A path's verdict under the current verifier key."""

    id: int
    outcome: str  # correct | error | unparseable
    reason: str | None
    verifier_answer: str | None = None  # the option the verifier says the path concludes with
    answer_guard: str = "extracted"  # the guard mode the verdict was judged under (decisions and views agree)


@dataclass(frozen=True, slots=True)
class AcceptedRef:
    """An accepted path and the verdict it was accepted on."""

    path_id: int
    verdict_id: int


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """Where a question stands (``question_outcomes``)."""

    status: str  # resolved | accepted | rejected
    tier: str | None
    n_paths: int
    n_correct: int
    n_accepted: int
    rejection_reason: str | None
    run_id: int | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class QuestionState:
    """Everything stored for one question, so each stage can do exactly what is missing."""

    paths: list[PathRow] = field(default_factory=list)
    verdicts: dict[int, StoredVerdict] = field(default_factory=dict)  # by path id
    scores: dict[int, int | None] = field(default_factory=dict)  # path id -> score (None: did not parse)
    accepted: list[AcceptedRef] = field(default_factory=list)  # in rank order
    summaries: set[int] = field(default_factory=set)  # path ids with a summary
    outcome: OutcomeRow | None = None
    # A write found rows already stored that this state does not hold (another worker's, under an expired
    # claim): read the state again before relying on it.
    reread: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not None and self.outcome.finished

    # What each stage write adds, so a state carried between stages stays what ``load_questions`` would read.

    def add_paths(self, records: Sequence[PathRecord], new_ids: Mapping[str, int]) -> None:
        for r in records:
            pid = new_ids.get(r.path_key)
            if pid is None:
                self.reread = True
                continue
            self.paths.append(
                PathRow(
                    pid,
                    r.path_key,
                    r.origin,
                    r.parent_path_id,
                    r.endpoint,
                    r.model,
                    r.temperature,
                    r.sample_index,
                    r.generation_order,
                    r.clean_text,
                    r.extracted_answer,
                    r.prompt_sha256,
                )
            )

    def add_verdicts(self, records: Sequence[VerdictRecord], new_ids: Mapping[int, int]) -> None:
        for r in records:
            vid = new_ids.get(r.path_id)
            if vid is None:
                self.reread = True
            else:
                self.verdicts[r.path_id] = StoredVerdict(
                    vid, r.outcome, r.reason, r.verifier_answer, r.answer_guard
                )

    def add_scores(self, records: Sequence[ScoreRecord], new: set[int]) -> None:
        for r in records:
            if r.path_id in new:
                self.scores[r.path_id] = r.score
            else:
                self.reread = True

    def decide(self, outcome: OutcomeRow, accepted: Sequence[AcceptedRef], dropped: set[int]) -> None:
        """A resolution written: ``dropped`` are kept paths whose summary was found unusable before."""
        self.outcome = outcome
        self.accepted = [a for a in accepted if a.path_id not in dropped]

    def add_summaries(
        self, records: Sequence[SummaryRecord], new: set[int], dropped: Mapping[int, str], complete: bool
    ) -> None:
        for r in records:
            if r.path_id in new:
                self.summaries.add(r.path_id)
            else:
                self.reread = True
        self.accepted = [a for a in self.accepted if a.path_id not in dropped]
        if complete and self.outcome is not None:
            self.outcome = replace(self.outcome, status="accepted", n_accepted=len(self.accepted))

    def by_origin(self, origin: str) -> list[PathRow]:
        return sorted((p for p in self.paths if p.origin == origin), key=lambda p: (p.generation_order, p.id))

    def path(self, path_id: int) -> PathRow:
        return next(p for p in self.paths if p.id == path_id)


class JudgeKey(NamedTuple):
    """Which stored verdicts, scores or summaries are current: those of this model and prompt."""

    model: str
    prompt_sha256: str


class WriterKey(NamedTuple):
    """Which refined or regenerated paths count: this model's, with the template or one of its re-ask variants."""

    model: str
    prompt_shas: tuple[str, ...]


@dataclass(frozen=True)
class StageKeys:
    """The current key of each judged and each writing stage."""

    verifier: JudgeKey
    ranker: JudgeKey
    summarizer: JudgeKey
    refiner: WriterKey = WriterKey("", ())
    regenerator: WriterKey = WriterKey("", ())

    def writes(self, origin: str) -> WriterKey:
        return self.refiner if origin == "refined" else self.regenerator


def _same_kind(simulated: bool) -> ColumnElement[bool]:
    """Paths of the run's kind only: simulated work and real work never mix (reasonmed/simulated.py)."""
    return simulated_path() if simulated else ~simulated_path()


def load_state(engine: Engine, question_id: int, keys: StageKeys, *, simulated: bool) -> QuestionState:
    """``simulated``: the run's models are the simulator's; the state holds only work of that kind."""
    return load_questions(engine, [question_id], keys, simulated=simulated)[question_id].state


@dataclass(slots=True)
class LoadedQuestion:
    """A question's row and everything stored for it under the run's keys (``state`` is replaced when
    it is read again)."""

    question: QuestionView
    state: QuestionState


_LOAD_CHUNK = 1000  # ids per IN list


def load_questions(
    engine: Engine, question_ids: Sequence[int], keys: StageKeys, *, simulated: bool
) -> dict[int, LoadedQuestion]:
    """Questions and their states, read together: seven statements for a whole shard instead of seven per
    question and stage. ``simulated``: the run's models are the simulator's; a state holds only work of
    that kind. Missing ids raise ``KeyError`` at the caller."""
    out: dict[int, LoadedQuestion] = {}
    with engine.connect() as c:
        for i in range(0, len(question_ids), _LOAD_CHUNK):
            out.update(_load_chunk(c, list(question_ids[i : i + _LOAD_CHUNK]), keys, simulated))
    return out


def _load_chunk(c: Connection, ids: list[int], keys: StageKeys, simulated: bool) -> dict[int, LoadedQuestion]:
    out = {
        row["id"]: LoadedQuestion(_question_view(row), QuestionState())
        for row in c.execute(select(Question).where(Question.id.in_(ids))).mappings()
    }
    st = {qid: loaded.state for qid, loaded in out.items()}
    for qid, *r in c.execute(
        select(
            ReasoningPath.question_id,
            ReasoningPath.id,
            ReasoningPath.path_key,
            ReasoningPath.origin,
            ReasoningPath.parent_path_id,
            ReasoningPath.endpoint,
            ReasoningPath.model,
            ReasoningPath.temperature,
            ReasoningPath.sample_index,
            ReasoningPath.generation_order,
            ReasoningPath.clean_text,
            ReasoningPath.extracted_answer,
            ReasoningPath.prompt_sha256,
        ).where(ReasoningPath.question_id.in_(ids), _same_kind(simulated))
    ):
        st[qid].paths.append(PathRow(*r))
    for qid, vid, pid, outcome, reason, verifier_answer, answer_guard in c.execute(
        select(
            Verdict.question_id,
            Verdict.id,
            Verdict.path_id,
            Verdict.outcome,
            Verdict.reason,
            Verdict.verifier_answer,
            Verdict.answer_guard,
        ).where(
            Verdict.question_id.in_(ids),
            Verdict.verifier_model == keys.verifier.model,
            Verdict.prompt_sha256 == keys.verifier.prompt_sha256,
        )
    ):
        st[qid].verdicts[pid] = StoredVerdict(vid, outcome, reason, verifier_answer, answer_guard)
    for qid, pid, score in c.execute(
        select(PathScore.question_id, PathScore.path_id, PathScore.score).where(
            PathScore.question_id.in_(ids),
            PathScore.ranker_model == keys.ranker.model,
            PathScore.prompt_sha256 == keys.ranker.prompt_sha256,
        )
    ):
        st[qid].scores[pid] = score
    for qid, pid, vid in c.execute(
        select(AcceptedPath.question_id, AcceptedPath.path_id, AcceptedPath.verdict_id)
        .join(ReasoningPath, ReasoningPath.id == AcceptedPath.path_id)
        .where(
            AcceptedPath.question_id.in_(ids),
            AcceptedPath.dropped_reason.is_(None),
            AcceptedPath.superseded_at.is_(None),
            _same_kind(simulated),
        )
        .order_by(AcceptedPath.question_id, AcceptedPath.rank)
    ):
        st[qid].accepted.append(AcceptedRef(pid, vid))
    for qid, pid in c.execute(
        select(Summary.question_id, Summary.path_id).where(
            Summary.question_id.in_(ids),
            Summary.summarizer_model == keys.summarizer.model,
            Summary.prompt_sha256 == keys.summarizer.prompt_sha256,
        )
    ):
        st[qid].summaries.add(pid)
    for row in c.execute(
        select(
            QuestionOutcome.question_id,
            QuestionOutcome.status,
            QuestionOutcome.tier,
            QuestionOutcome.n_paths,
            QuestionOutcome.n_correct,
            QuestionOutcome.n_accepted,
            QuestionOutcome.rejection_reason,
            QuestionOutcome.run_id,
            QuestionOutcome.simulated,
        ).where(QuestionOutcome.question_id.in_(ids))
    ):
        if bool(row.simulated) == simulated:
            st[row.question_id].outcome = OutcomeRow(*row[1:-1])
    return out


# --------------------------------------------------------------------------- stage writes


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One logical LLM request (``llm_calls``): a retry of the same ``call_key`` completes the same row."""

    call_key: str
    question_id: int
    run_id: int | None
    role: str
    endpoint: str
    model: str
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    n: int
    prompt_sha256: str
    request_id: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str | None
    status: str  # ok | error
    error_kind: str | None
    error: str | None
    attempts: int
    prefect_flow_run_id: str | None
    prefect_task_run_id: str | None
    created_at: datetime
    batch_id: int | None = None  # the batch that answered it (endpoints with mode batch)


@dataclass(frozen=True, slots=True)
class PathRecord:
    """A reasoning path to store (``reasoning_paths``), linked to the call that wrote it by ``call_key``."""

    question_id: int
    path_key: str
    origin: str  # generated | refined | regenerated
    role: str
    parent_path_id: int | None
    call_key: str
    run_id: int | None
    endpoint: str
    model: str
    temperature: float
    sample_index: int
    generation_order: int
    prompt_sha256: str
    raw_text: str
    clean_text: str
    extracted_answer: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    verifier_model: str
    prompt_sha256: str
    outcome: str
    reason: str | None
    raw_output: str | None
    parse_attempts: int
    created_at: datetime
    # Both readings of the option the path concludes with, and the guard they were judged under
    # (reasonmed/answer_guard.py): the rules', the verifier's, the mode, and the reading the mode compares.
    extracted_answer: str | None = None
    verifier_answer: str | None = None
    answer_guard: str = "extracted"
    guard_answer: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    ranker_model: str
    prompt_sha256: str
    score: int | None  # None: the ranker's output did not parse
    justification: str | None
    raw_output: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    summarizer_model: str
    prompt_sha256: str
    text: str
    created_at: datetime


_CALL_UPDATE = [
    "run_id",
    "request_id",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "finish_reason",
    "status",
    "error_kind",
    "error",
    "attempts",
    "prefect_flow_run_id",
    "prefect_task_run_id",
    "created_at",
    "batch_id",
]


def _save_calls(s: Session, records: Sequence[CallRecord]) -> dict[str, int]:
    """Upsert call records by call_key (a retry completes the same row) and return their ids."""
    if not records:
        return {}
    calls = [asdict(c) for c in records]
    # A successful record is never overwritten by a later failure of the same logical call.
    ok = [c for c in calls if c["status"] == "ok"]
    failed = [c for c in calls if c["status"] != "ok"]
    ids: dict[str, int] = {}
    if ok:
        written = upsert(s, LLMCall.__table__, ok, ["call_key"], _CALL_UPDATE, returning=["call_key", "id"])
        ids.update((key, cid) for key, cid in written)
    if failed:
        # Insert with zero attempts, then add this try's attempts, whether the row is new or not.
        insert_ignore(s, LLMCall.__table__, [{**c, "attempts": 0} for c in failed], ["call_key"])
        tbl = LLMCall.__table__
        s.execute(
            update(tbl)
            .where(tbl.c.call_key == bindparam("k"), tbl.c.status != "ok")
            .values(
                attempts=tbl.c.attempts + bindparam("a"), error_kind=bindparam("ek"), error=bindparam("e")
            ),
            [
                {"k": c["call_key"], "a": c["attempts"], "ek": c["error_kind"], "e": c["error"]}
                for c in failed
            ],
        )
        keys = [c["call_key"] for c in failed]
        ids.update(s.execute(select(LLMCall.call_key, LLMCall.id).where(LLMCall.call_key.in_(keys))).all())
    return ids


def _linked(
    records: Sequence[PathRecord | VerdictRecord | ScoreRecord | SummaryRecord], ids: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Table rows of ``records``, each linked to its call's row id in place of its call key."""
    out = []
    for rec in records:
        r = asdict(rec)
        r["llm_call_id"] = ids.get(r.pop("call_key"))
        out.append(r)
    return out


def write_paths(s: Session, calls: Sequence[CallRecord], paths: Sequence[PathRecord]) -> dict[str, int]:
    """Calls and the paths they wrote; returns the new paths' ids by path key (a key already stored is
    left as it is and missing from the result)."""
    ids = _save_calls(s, calls)
    if not paths:
        return {}
    rows = _linked(paths, ids)
    new = insert_new(s, ReasoningPath.__table__, rows, ["question_id", "path_key"], ["path_key", "id"])
    return {key: pid for key, pid in new}


def _supersede(
    s: Session,
    model: type[Verdict | PathScore | Summary],
    model_col: str,
    rows: Sequence[VerdictRecord | ScoreRecord | SummaryRecord],
) -> None:
    """The rows just written are the current ones for their paths: older rows under another
    (model, prompt) key are marked superseded (kept for audit), and a key written again is current again."""
    by_key: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        by_key.setdefault((getattr(r, model_col), r.prompt_sha256), []).append(r.path_id)
    col = getattr(model, model_col)
    for (m, sha), paths in by_key.items():
        same = and_(col == m, model.prompt_sha256 == sha)
        s.execute(
            update(model)
            .where(model.path_id.in_(paths), model.superseded_at.is_(None), ~same)
            .values(superseded_at=now()),
            execution_options={"synchronize_session": False},
        )
        s.execute(
            update(model)
            .where(model.path_id.in_(paths), model.superseded_at.is_not(None), same)
            .values(superseded_at=None),
            execution_options={"synchronize_session": False},
        )


def write_verdicts(
    s: Session, calls: Sequence[CallRecord], verdicts: Sequence[VerdictRecord]
) -> dict[int, int]:
    """Calls and verdicts; returns the new verdicts' ids by path id."""
    ids = _save_calls(s, calls)
    if not verdicts:
        return {}
    conflict = ["path_id", "verifier_model", "prompt_sha256"]
    new = insert_new(s, Verdict.__table__, _linked(verdicts, ids), conflict, ["path_id", "id"])
    _supersede(s, Verdict, "verifier_model", verdicts)
    return {pid: vid for pid, vid in new}


def write_scores(s: Session, calls: Sequence[CallRecord], scores: Sequence[ScoreRecord]) -> set[int]:
    """Calls and scores; returns the path ids whose score is new."""
    ids = _save_calls(s, calls)
    if not scores:
        return set()
    conflict = ["path_id", "ranker_model", "prompt_sha256"]
    new = insert_new(s, PathScore.__table__, _linked(scores, ids), conflict, ["path_id"])
    _supersede(s, PathScore, "ranker_model", scores)
    return {pid for (pid,) in new}


def write_resolution(
    s: Session,
    *,
    question_id: int,
    run_id: int | None,
    tier: str,
    n_paths: int,
    n_correct: int,
    accepted: Sequence[AcceptedRef],
    rejection_reason: str | None,
    simulated: bool = False,
) -> set[int]:
    """The tier decision: accepted paths (ranked) and the outcome row, in the caller's transaction.
    Returns the kept paths that stay dropped (an unusable summary found by an earlier decision).

    Deciding again (new verdicts, scores or prompts) keeps the history: a path no longer kept is marked
    superseded, a path kept again is current again with its new verdict and rank. A decision by real models
    also drops the question's simulated accepted paths with the reason, so they are neither counted nor
    exported.
    """
    keep = [a.path_id for a in accepted]
    s.execute(
        update(AcceptedPath)
        .where(
            AcceptedPath.question_id == question_id,
            AcceptedPath.superseded_at.is_(None),
            *([AcceptedPath.path_id.not_in(keep)] if keep else []),
        )
        .values(superseded_at=now()),
        execution_options={"synchronize_session": False},
    )
    if not simulated:
        sim_paths = select(ReasoningPath.id).where(ReasoningPath.question_id == question_id, simulated_path())
        s.execute(
            update(AcceptedPath)
            .where(
                AcceptedPath.question_id == question_id,
                AcceptedPath.dropped_reason.is_(None),
                AcceptedPath.path_id.in_(sim_paths),
            )
            .values(dropped_reason=SUPERSEDED_REASON.format(run_id=run_id)),
            execution_options={"synchronize_session": False},
        )
    dropped: set[int] = set()
    if accepted:
        written = upsert(
            s,
            AcceptedPath.__table__,
            [
                {
                    "question_id": question_id,
                    "path_id": a.path_id,
                    "verdict_id": a.verdict_id,
                    "rank": i,
                    "run_id": run_id,
                    "created_at": now(),
                    "superseded_at": None,
                }
                for i, a in enumerate(accepted)
            ],
            ["path_id"],
            ["verdict_id", "rank", "superseded_at"],
            returning=["path_id", "dropped_reason"],
        )
        dropped = {pid for pid, why in written if why is not None}
    status = "resolved" if accepted else "rejected"
    row = {
        "question_id": question_id,
        "run_id": run_id,
        "tier": tier,
        "n_paths": n_paths,
        "n_correct": n_correct,
        "status": status,
        "rejection_reason": rejection_reason,
        "n_accepted": len(accepted),
        "updated_at": now(),
        "simulated": simulated,
    }
    upsert(s, QuestionOutcome.__table__, [row], ["question_id"], [k for k in row if k != "question_id"])
    return dropped


def write_summaries(
    s: Session,
    calls: Sequence[CallRecord],
    summaries: Sequence[SummaryRecord],
    *,
    question_id: int,
    complete: bool,
    dropped: Mapping[int, str] | None = None,
) -> set[int]:
    """Summaries; accepted paths ``dropped`` (path id -> reason) for an unusable summary; and, when every
    kept path has its summary (``complete``), the question becomes accepted with that many paths.
    Returns the path ids whose summary is new."""
    ids = _save_calls(s, calls)
    new: set[int] = set()
    if summaries:
        conflict = ["path_id", "summarizer_model", "prompt_sha256"]
        new = {
            pid for (pid,) in insert_new(s, Summary.__table__, _linked(summaries, ids), conflict, ["path_id"])
        }
        _supersede(s, Summary, "summarizer_model", summaries)
    for path_id, reason in (dropped or {}).items():
        s.execute(
            update(AcceptedPath).where(AcceptedPath.path_id == path_id).values(dropped_reason=reason),
            execution_options={"synchronize_session": False},
        )
    if complete:
        kept = (
            select(func.count())
            .select_from(AcceptedPath)
            .where(
                AcceptedPath.question_id == question_id,
                AcceptedPath.dropped_reason.is_(None),
                AcceptedPath.superseded_at.is_(None),
            )
            .scalar_subquery()
        )
        s.execute(
            update(QuestionOutcome)
            .where(QuestionOutcome.question_id == question_id)
            .values(status="accepted", n_accepted=kept, updated_at=now())
        )
    return new


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class UnusableShare:
    role: str
    outputs: int
    unusable: int


def unusable_outputs(engine: Engine, run_id: int) -> list[UnusableShare]:
    """Per role, this run's outputs and how many were unusable after every re-ask: generated paths with
    no extractable answer, unparseable verdicts, rank scores that did not parse."""
    probes = {
        "generator": select(
            func.count(), func.count().filter(ReasoningPath.extracted_answer.is_(None))
        ).where(ReasoningPath.run_id == run_id, ReasoningPath.origin == "generated"),
        "verifier": select(func.count(), func.count().filter(Verdict.outcome == "unparseable")).where(
            Verdict.run_id == run_id
        ),
        "ranker": select(func.count(), func.count().filter(PathScore.score.is_(None))).where(
            PathScore.run_id == run_id
        ),
    }
    with engine.connect() as c:
        return [UnusableShare(role, *c.execute(stmt).one()) for role, stmt in probes.items()]


def run_report(engine: Engine, run_id: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The tables a run's artifacts and the CLI show; ``run_id=None`` covers the whole database."""
    params = {} if run_id is None else {"run_id": run_id}
    o_run = "" if run_id is None else "AND o.run_id = :run_id"
    p_run = "" if run_id is None else "AND p.run_id = :run_id"
    c_run = "" if run_id is None else "AND c.run_id = :run_id"
    r_run = "" if run_id is None else "AND r.run_id = :run_id"
    queries = {
        "tiers": f"""
            SELECT coalesce(o.tier, '-') AS tier, o.status, count(*) AS questions, sum(o.n_accepted) AS accepted_paths
            FROM question_outcomes o WHERE 1 = 1 {o_run} GROUP BY o.tier, o.status ORDER BY o.tier, o.status""",
        "rejections": f"""
            SELECT o.tier, o.rejection_reason AS reason, count(*) AS questions
            FROM question_outcomes o WHERE o.status = 'rejected' {o_run}
            GROUP BY o.tier, o.rejection_reason ORDER BY count(*) DESC""",
        "rejected_paths": f"""
            SELECT r.origin, r.why AS reason, count(*) AS paths
            FROM audit_rejected_paths r WHERE 1 = 1 {r_run}
            GROUP BY r.origin, r.why ORDER BY count(*) DESC, r.origin, r.why""",
        "verifier_disagreements": f"""
            SELECT d.model, d.disagreement, count(*) AS paths
            FROM audit_verifier_disagreements d WHERE d.current_verdict = 1 {r_run.replace("r.", "d.")}
            GROUP BY d.model, d.disagreement ORDER BY d.model, d.disagreement""",
        "verifier_accuracy": f"""
            SELECT p.model, p.temperature, count(*) AS paths,
                   sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS correct,
                   round(cast(avg(CASE WHEN v.outcome = 'correct' THEN 1.0 ELSE 0.0 END) AS numeric), 3) AS accuracy
            FROM reasoning_paths p JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
            WHERE p.origin = 'generated' {p_run}
            GROUP BY p.model, p.temperature ORDER BY p.model, p.temperature""",
        "tokens": f"""
            SELECT c.role AS stage, c.model, count(*) AS calls, sum(c.prompt_tokens) AS prompt_tokens,
                   sum(c.completion_tokens) AS completion_tokens,
                   sum(CASE WHEN c.status = 'ok' THEN 0 ELSE 1 END) AS failed_calls
            FROM llm_calls c WHERE 1 = 1 {c_run} GROUP BY c.role, c.model ORDER BY c.role, c.model""",
    }
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as c:
        for name, sql in queries.items():
            out[name] = [
                {k: (float(v) if hasattr(v, "as_tuple") else v) for k, v in row.items()}
                for row in c.execute(text(sql), params).mappings()
            ]
    return out
