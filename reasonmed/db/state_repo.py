"""A question's row and everything stored for it under the run's stage keys, read in a few statements
per shard, so each stage can do exactly what is missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, select
from sqlalchemy.engine import Connection

from reasonmed.db.models import (
    AcceptedPath,
    PathScore,
    Question,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
    simulated_path,
)
from reasonmed.question_state import (
    AcceptedRef,
    LoadedQuestion,
    OutcomeRow,
    PathRow,
    QuestionState,
    StageKeys,
    StoredVerdict,
)
from reasonmed.question_view import QuestionView


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


def _same_kind(simulated: bool) -> ColumnElement[bool]:
    """Paths of the run's kind only: simulated work and real work never mix (reasonmed/simulated.py)."""
    return simulated_path() if simulated else ~simulated_path()


def load_state(engine: Engine, question_id: int, keys: StageKeys, *, simulated: bool) -> QuestionState:
    """``simulated``: the run's models are the simulator's; the state holds only work of that kind."""
    return load_questions(engine, [question_id], keys, simulated=simulated)[question_id].state


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
