"""SQL for nightly growth: the one-run-at-a-time guard, and the totals its growth report compares.

The guard is a ``pipeline_runs`` row (kind ``nightly``, status ``running``) whose ``heartbeat_at`` the
holder renews: a lock row with an expiry, so it works on Postgres and SQLite alike, needs no schema
change, leaves an audit record of every night, and a night that died (no more heartbeats) stops
blocking once its lease has run out. Taking it is serialised: by a transaction-scoped advisory lock on
Postgres, and on SQLite by making the first statement a write (SQLite then holds its single write lock
for the rest of the transaction). Any session may take the same advisory key and keep it (an idle
session, another tool), so the wait for it is bounded and a run that gives up names who holds it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, and_, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from reasonmed.db.claims_repo import count_pending
from reasonmed.db.engine import transaction
from reasonmed.db.models import AcceptedPath, LLMCall, PipelineRun, Question, QuestionOutcome
from reasonmed.db.runs_repo import now

# Any fixed 64-bit key: only this lock uses it (pg_advisory_xact_lock's namespace is per database).
ADVISORY_KEY = 0x7265_6173_6F6E_6D64  # "reasonmd"
_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a wait ended by lock_timeout

# Who holds the key: pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32
# bits) with objsubid 1. Without pg_read_all_stats the app role sees only pid, user and application of
# other roles' sessions; the rest is NULL.
_KEY_HOLDERS = text("""
SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state, a.backend_start, a.state_change
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = :hi AND l.objid::bigint = :lo
ORDER BY a.pid
""")


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: enough for a clear refusal message."""

    run_id: int
    host: str | None
    prefect_flow_run_id: str | None
    started_at: datetime
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class KeySession:
    """A session holding the advisory key: whom to ask, or end, when runs cannot start."""

    pid: int
    user: str | None
    application_name: str | None
    client: str | None  # address; None for a local socket or when not visible
    state: str | None  # active | idle | idle in transaction ...; None when not visible
    connected_at: datetime | None
    state_since: datetime | None


class LockKeyHeld(Exception):
    """The advisory key stayed held for the whole wait, by ``sessions`` (empty: released meanwhile)."""

    def __init__(self, sessions: tuple[KeySession, ...], waited_s: float) -> None:
        super().__init__(f"advisory key {ADVISORY_KEY} held for more than {waited_s:g}s")
        self.sessions, self.waited_s, self.key = sessions, waited_s, ADVISORY_KEY


class _KeyWaitRanOut(Exception):
    """lock_timeout ended the wait for the key (and with it the transaction)."""


def acquire_run_lock(
    engine: Engine,
    *,
    kind: str,
    ttl_s: float,
    wait_s: float,
    parameters: dict[str, Any],
    prefect_flow_run_id: str | None,
) -> tuple[int | None, Holder | None]:
    """Start a ``kind`` run if no live one exists: ``(run_id, None)``, else ``(None, the holder)``.

    A ``running`` row whose heartbeat is older than ``ttl_s`` belongs to a run that died: it is marked
    failed (with the reason) and no longer blocks. On Postgres, waits at most ``wait_s`` for the key that
    serialises starts, then raises :class:`LockKeyHeld` naming the sessions that hold it.
    """
    try:
        return _acquire(
            engine, kind=kind, ttl_s=ttl_s, wait_s=wait_s, parameters=parameters, flow=prefect_flow_run_id
        )
    except _KeyWaitRanOut:  # asked once the failed transaction is gone
        raise LockKeyHeld(key_holders(engine), wait_s) from None


def key_holders(engine: Engine) -> tuple[KeySession, ...]:
    """The sessions that hold the advisory key now (Postgres)."""
    with engine.connect() as c:
        rows = c.execute(_KEY_HOLDERS, {"hi": ADVISORY_KEY >> 32, "lo": ADVISORY_KEY & 0xFFFF_FFFF}).all()
    return tuple(KeySession(*row) for row in rows)


def _take_key(s: Session, wait_s: float) -> None:
    """The transaction-scoped advisory lock, waited for at most ``wait_s`` (lock_timeout covers advisory
    locks); the session's own lock_timeout is back in force for the rest of the transaction."""
    previous = s.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    s.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{max(1, round(wait_s * 1000))}ms"})
    try:
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise _KeyWaitRanOut from None
        raise
    s.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})


def _acquire(
    engine: Engine, *, kind: str, ttl_s: float, wait_s: float, parameters: dict[str, Any], flow: str | None
) -> tuple[int | None, Holder | None]:
    with transaction(engine) as s:
        if engine.dialect.name == "postgresql":
            _take_key(s, wait_s)
        t = now()
        cutoff = t - timedelta(seconds=ttl_s)
        # First statement is a write: on SQLite it takes the write lock before anything is read.
        s.execute(
            update(PipelineRun)
            .where(
                PipelineRun.kind == kind, PipelineRun.status == "running", PipelineRun.heartbeat_at < cutoff
            )
            .values(
                status="failed", finished_at=t, error=f"abandoned: no heartbeat for {ttl_s:g}s (the run died)"
            ),
            execution_options={"synchronize_session": False},
        )
        live = s.execute(
            select(
                PipelineRun.id,
                PipelineRun.host,
                PipelineRun.prefect_flow_run_id,
                PipelineRun.started_at,
                PipelineRun.heartbeat_at,
            )
            .where(PipelineRun.kind == kind, PipelineRun.status == "running")
            .order_by(PipelineRun.id)
            .limit(1)
        ).first()
        if live is not None:
            return None, Holder(*live)
        run = PipelineRun(
            kind=kind,
            status="running",
            parameters=parameters,
            stats={},
            prefect_flow_run_id=flow,
            host=socket.gethostname(),
            started_at=t,
            heartbeat_at=t,
        )
        s.add(run)
        s.flush()
        return run.id, None


def renew_run_lock(engine: Engine, run_id: int) -> bool:
    """Push the heartbeat forward; False if the row is no longer ``running`` (another run took over)."""
    with transaction(engine) as s:
        res = s.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id, PipelineRun.status == "running")
            .values(heartbeat_at=now()),
            execution_options={"synchronize_session": False},
        )
        return bool(cast("CursorResult[Any]", res).rowcount)  # an UPDATE's result is a CursorResult


# --------------------------------------------------------------------------- growth figures


def dataset_totals(engine: Engine) -> dict[str, int]:
    """Where the whole dataset stands: compared before and after a night to tell what it added."""
    with engine.connect() as c:
        questions = c.execute(
            select(func.count()).select_from(Question).where(Question.is_benchmark_test.is_(False))
        ).scalar_one()
        held_out = c.execute(
            select(func.count()).select_from(Question).where(Question.is_benchmark_test.is_(True))
        ).scalar_one()
        by_status = dict(
            c.execute(select(QuestionOutcome.status, func.count()).group_by(QuestionOutcome.status)).all()
        )
        samples = c.execute(
            select(func.count())
            .select_from(AcceptedPath)
            .join(QuestionOutcome, QuestionOutcome.question_id == AcceptedPath.question_id)
            .where(
                QuestionOutcome.status == "accepted",
                AcceptedPath.dropped_reason.is_(None),
                AcceptedPath.superseded_at.is_(None),
            )
        ).scalar_one()
    return {
        "questions": questions,
        "benchmark_test_held_out": held_out,
        "accepted": by_status.get("accepted", 0),
        "rejected": by_status.get("rejected", 0),
        "in_progress": by_status.get("resolved", 0),
        "pending": count_pending(engine),
        "samples": samples,
    }


def finished_since(engine: Engine, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Questions that reached a final state since ``since``: tier mix and rejection reasons.

    By time rather than by run id, so questions a dead night left half-done and this night finished
    count for this night.
    """
    recent = and_(QuestionOutcome.updated_at >= since, QuestionOutcome.status.in_(("accepted", "rejected")))
    with engine.connect() as c:
        tiers = [
            {"tier": tier or "-", "status": status, "questions": n, "samples": int(paths or 0)}
            for tier, status, n, paths in c.execute(
                select(
                    QuestionOutcome.tier,
                    QuestionOutcome.status,
                    func.count(),
                    func.sum(QuestionOutcome.n_accepted),
                )
                .where(recent)
                .group_by(QuestionOutcome.tier, QuestionOutcome.status)
                .order_by(QuestionOutcome.tier, QuestionOutcome.status)
            )
        ]
        rejections = [
            {"tier": tier or "-", "reason": reason or "-", "questions": n}
            for tier, reason, n in c.execute(
                select(QuestionOutcome.tier, QuestionOutcome.rejection_reason, func.count())
                .where(recent, QuestionOutcome.status == "rejected")
                .group_by(QuestionOutcome.tier, QuestionOutcome.rejection_reason)
                .order_by(func.count().desc())
            )
        ]
        spent = c.execute(
            select(
                QuestionOutcome.tier,
                func.count(LLMCall.id),
                func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
                func.coalesce(func.sum(LLMCall.completion_tokens), 0),
                func.coalesce(func.sum(LLMCall.latency_ms), 0.0),
            )
            .join(LLMCall, LLMCall.question_id == QuestionOutcome.question_id)
            .where(recent)
            .group_by(QuestionOutcome.tier)
        ).all()
    samples: dict[str, int] = {}
    for row in tiers:
        tier_name = str(row["tier"])
        samples[tier_name] = samples.get(tier_name, 0) + cast(int, row["samples"])
    cost = [
        _per_sample(
            tier or "-", samples.get(tier or "-", 0), calls, int(pt or 0), int(ct or 0), float(ms or 0) / 1000
        )
        for tier, calls, pt, ct, ms in spent
    ]
    return {"tiers": tiers, "rejections": rejections, "cost": cost}


def _per_sample(
    tier: str, samples: int, calls: int, prompt: int, completion: int, engine_s: float
) -> dict[str, Any]:
    """What the questions of a tier finished this night spent (every call, rejected questions included) over
    the samples they gave (None: none)."""
    per = (lambda v: round(v / samples, 3)) if samples else (lambda v: None)
    return {
        "tier": tier,
        "samples": samples,
        "calls": calls,
        "prompt_tokens_per_sample": per(prompt),
        "completion_tokens_per_sample": per(completion),
        "engine_s_per_sample": per(engine_s),
    }
