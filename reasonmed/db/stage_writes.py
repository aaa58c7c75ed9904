"""The SQL of each stage's write: calls, paths, verdicts, scores, the tier decision and summaries.

Each ``write_*`` takes typed records (``reasonmed/stage_records.py``) and runs in the caller's transaction
(one per write, or one per batch: ``db/write_behind.py``); the unique keys (call_key, question +
path_key, path + model) make a replay of the same write a no-op, which is what makes retries and resumed
runs safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from reasonmed.db.models import (
    AcceptedPath,
    LLMCall,
    PathScore,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
    simulated_path,
)
from reasonmed.db.runs_repo import now
from reasonmed.db.upsert import insert_ignore, insert_new, upsert
from reasonmed.question_state import AcceptedRef
from reasonmed.simulated import SUPERSEDED_REASON
from reasonmed.stage_records import CallRecord, PathRecord, ScoreRecord, SummaryRecord, VerdictRecord

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
    "cached_prompt_tokens",
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
