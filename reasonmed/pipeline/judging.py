"""The judged steps: the verifier's verdicts, the ranker's scores and the summarizer's summaries, one shape.

Each asks its judge about the paths it has not judged under the current key (model and prompt), one request
per path with a seed and a call key of the path's own, and records every call made (``ask_judge``). Verdicts
and scores are then stored with their calls in one transaction and added to the carried state
(``judge_missing``). Summaries decide more when stored (paths dropped for an unusable summary, the question
complete), so ``stages`` stores them itself after ``ask_judge``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling
from reasonmed.agents.ranker import score_path
from reasonmed.agents.summarizer import summarize_path
from reasonmed.agents.verifier import VerdictResult, verify_path
from reasonmed.config import PipelineConfig, RankerConfig, VerifierConfig
from reasonmed.db import stage_writes
from reasonmed.db.runs_repo import now
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import ParsedScore
from reasonmed.pipeline import keys
from reasonmed.pipeline.context import StageContext
from reasonmed.pipeline.failures import raise_if_failed
from reasonmed.pipeline.records import call_record, waiting
from reasonmed.prompts import PromptTemplate
from reasonmed.provenance import Provenance
from reasonmed.question_state import PathRow, QuestionState
from reasonmed.stage_records import CallRecord, ScoreRecord, SummaryRecord, VerdictRecord
from reasonmed.structured_output import SCORE_SCHEMA, VERDICT_SCHEMA, format_for
from reasonmed.tiers import guard_answer

A = TypeVar("A")  # what a judge's reply parses into
A_co = TypeVar("A_co", covariant=True)
R = TypeVar("R")  # the row stored for one judged path
N = TypeVar("N")  # what storing the rows returns: which are new (``QuestionState.add_*`` reads it)


class JudgeAgent(Protocol[A_co]):
    """The agents that read one path (``agents/verifier.py``, ``ranker.py``, ``summarizer.py``)."""

    async def __call__(
        self,
        backend: ChatBackend,
        q: QuestionView,
        path_text: str,
        *,
        sampling: Sampling,
        seed: int,
        attempts: int,
        template: PromptTemplate | None = None,
    ) -> tuple[CallOutcome, A_co | None]: ...


@dataclass(frozen=True)
class JudgeSettings:
    """How a judge is asked, as the pipeline file sets it."""

    endpoint: str
    sampling: Sampling
    attempts: int  # asks per path, the first one included


@dataclass(frozen=True)
class JudgeRole(Generic[A]):
    """What tells one judge from another when it is asked."""

    prompt: str  # verify | rank | summarize: its template, and the stage its seeds and call keys name
    stage: str  # how a failure names the step
    agent: JudgeAgent[A]
    judged: Callable[[QuestionState], Container[int]]  # the path ids it has judged under the current key
    settings: Callable[[PipelineConfig], JudgeSettings]

    def todo(self, st: QuestionState, paths: Sequence[PathRow]) -> list[PathRow]:
        done = self.judged(st)
        return [p for p in paths if p.id not in done]


@dataclass(frozen=True)
class Judgment(Generic[A]):
    """One path's judge call: its key and outcome, and the agent's answer (None: the call failed, or its reply
    never parsed, which the verifier instead answers as an ``unparseable`` verdict)."""

    question_id: int
    run_id: int | None
    path: PathRow
    call_key: str
    call: CallOutcome
    answer: A | None


@dataclass(frozen=True)
class JudgeRound(Generic[A]):
    """A judge's answers about some paths of one question, and the call rows to store with them."""

    judgments: list[Judgment[A]]
    calls: list[CallRecord]  # every call but those still waiting on a batch endpoint's answer

    @property
    def outcomes(self) -> list[CallOutcome]:
        return [j.call for j in self.judgments]


async def ask_judge(
    ctx: StageContext, q: QuestionView, role: JudgeRole[A], paths: Sequence[PathRow], origin: Provenance
) -> JudgeRound[A]:
    """Ask ``role``'s judge about each of ``paths``, all at once."""
    how = role.settings(ctx.cfg)
    backend = ctx.backends.get(how.endpoint)
    template = ctx.cfg.prompt(role.prompt)
    results = await asyncio.gather(
        *(
            role.agent(
                backend,
                q,
                p.clean_text,
                sampling=how.sampling,
                seed=keys.path_seed(ctx.cfg.seed, q.content_hash, role.prompt, p.path_key),
                attempts=how.attempts,
                template=template,
            )
            for p in paths
        )
    )
    judgments = [
        Judgment(
            q.id,
            origin.run_id,
            p,
            keys.judge_call(q.id, role.prompt, p.id, call.model, template.version),
            call,
            answer,
        )
        for p, (call, answer) in zip(paths, results, strict=True)
    ]
    calls = [call_record(q, j.call_key, j.call, origin) for j in judgments if not waiting(j.call)]
    return JudgeRound(judgments, calls)


@dataclass(frozen=True)
class JudgedStep(Generic[A, R, N]):
    """A judged step whose rows are stored as they come: verification and ranking."""

    role: JudgeRole[A]
    record: Callable[[Judgment[A], PipelineConfig], R | None]  # the row to store, if any
    write: Callable[[Session, Sequence[CallRecord], Sequence[R]], N]  # ``stage_writes.write_*``
    add: Callable[[QuestionState, Sequence[R], N], None]  # ``QuestionState.add_*``


async def judge_missing(
    ctx: StageContext,
    q: QuestionView,
    st: QuestionState,
    step: JudgedStep[A, R, N],
    paths: Sequence[PathRow],
    origin: Provenance,
) -> None:
    """Judge those of ``paths`` the current key has not judged; their rows are stored and added to ``st``."""
    todo = step.role.todo(st, paths)
    if not todo:
        return
    judged = await ask_judge(ctx, q, step.role, todo, origin)
    rows = [row for j in judged.judgments if (row := step.record(j, ctx.cfg)) is not None]

    def write(s: Session) -> N:
        return step.write(s, judged.calls, rows)

    step.add(st, rows, await ctx.write(q.id, write))
    raise_if_failed(step.role.stage, q, judged.outcomes)


# --------------------------------------------------------------------------- the three judges


def _schema_bound(
    cfg: PipelineConfig, agent: VerifierConfig | RankerConfig, name: str, schema: Mapping[str, Any]
) -> JudgeSettings:
    """A judge whose reply the engine may hold to a JSON schema, asked ``parse_attempts`` times at most."""
    fmt = format_for(agent.structured_output, cfg.endpoints[agent.endpoint].structured_dialect, name, schema)
    sampling = Sampling(agent.temperature, agent.top_p, agent.max_tokens, fmt)
    return JudgeSettings(agent.endpoint, sampling, agent.parse_attempts)


def _summarizer(cfg: PipelineConfig) -> JudgeSettings:
    """The summarizer writes free text, re-asked ``output_retries`` times like the path writers."""
    sm = cfg.agents.summarizer
    return JudgeSettings(
        sm.endpoint, Sampling(sm.temperature, sm.top_p, sm.max_tokens), cfg.output_retries + 1
    )


def _verdict(j: Judgment[VerdictResult], cfg: PipelineConfig) -> VerdictRecord | None:
    """An endpoint failure stores nothing; a reply that never parsed is stored as an unparseable verdict."""
    verdict, p, mode = j.answer, j.path, cfg.answer_guard
    if verdict is None:
        return None
    return VerdictRecord(
        path_id=p.id,
        question_id=j.question_id,
        call_key=j.call_key,
        run_id=j.run_id,
        verifier_model=j.call.model,
        prompt_sha256=j.call.template_sha256,
        outcome=verdict.outcome,
        reason=verdict.reason,
        raw_output=verdict.raw_output,
        parse_attempts=max(j.call.attempts, 1),
        created_at=now(),
        extracted_answer=p.extracted_answer,
        verifier_answer=verdict.verifier_answer,
        answer_guard=mode,
        guard_answer=guard_answer(mode, p.extracted_answer, verdict.verifier_answer),
    )


def _score(j: Judgment[ParsedScore], cfg: PipelineConfig) -> ScoreRecord | None:
    """Every answered call stores a score, empty when the reply never parsed (it ranks last)."""
    call, parsed = j.call, j.answer
    if call.error is not None:
        return None
    return ScoreRecord(
        path_id=j.path.id,
        question_id=j.question_id,
        call_key=j.call_key,
        run_id=j.run_id,
        ranker_model=call.model,
        prompt_sha256=call.template_sha256,
        score=parsed.score if parsed else None,
        justification=parsed.justification if parsed else None,
        raw_output=call.completions[0].text if call.completions else None,
        created_at=now(),
    )


def summary_record(j: Judgment[str]) -> SummaryRecord | None:
    """The summary to store; None when the call failed or no reply was usable."""
    if j.call.error is not None or j.answer is None:
        return None
    return SummaryRecord(
        path_id=j.path.id,
        question_id=j.question_id,
        call_key=j.call_key,
        run_id=j.run_id,
        summarizer_model=j.call.model,
        prompt_sha256=j.call.template_sha256,
        text=j.answer,
        created_at=now(),
    )


VERIFY: JudgedStep[VerdictResult, VerdictRecord, dict[int, int]] = JudgedStep(
    role=JudgeRole(
        prompt="verify",
        stage="verification",
        agent=verify_path,
        judged=lambda st: st.verdicts,
        settings=lambda cfg: _schema_bound(cfg, cfg.agents.verifier, "verdict", VERDICT_SCHEMA),
    ),
    record=_verdict,
    write=stage_writes.write_verdicts,
    add=QuestionState.add_verdicts,
)
RANK: JudgedStep[ParsedScore, ScoreRecord, set[int]] = JudgedStep(
    role=JudgeRole(
        prompt="rank",
        stage="ranking",
        agent=score_path,
        judged=lambda st: st.scores,
        settings=lambda cfg: _schema_bound(cfg, cfg.agents.ranker, "score", SCORE_SCHEMA),
    ),
    record=_score,
    write=stage_writes.write_scores,
    add=QuestionState.add_scores,
)
SUMMARIZE: JudgeRole[str] = JudgeRole(
    prompt="summarize",
    stage="summarisation",
    agent=summarize_path,
    judged=lambda st: st.summaries,
    settings=_summarizer,
)
