"""Typed records the stages pass around: where a write comes from, the requests a stage sends, and the
rows a finished request becomes (``reasonmed.db.stage_writes`` writes them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from reasonmed.agents.base import CallOutcome, QuestionView
from reasonmed.db.runs_repo import now
from reasonmed.llm.types import BATCH_PENDING
from reasonmed.parsing import clean_reasoning, extract_answer
from reasonmed.pipeline import keys
from reasonmed.provenance import Provenance
from reasonmed.question_state import AcceptedRef
from reasonmed.redact import redact
from reasonmed.roles import Origin, Role
from reasonmed.stage_records import CallRecord, PathRecord

Request = Callable[
    [], Awaitable[CallOutcome]
]  # a request not sent yet (e.g. a functools.partial of an agent)


@dataclass(frozen=True, slots=True)
class PathPlace:
    """Where a written path sits among its question's paths: its key, origin, parent and order."""

    path_key: str
    origin: Origin
    parent: int | None
    sample_index: int
    generation_order: int


@dataclass(frozen=True, slots=True)
class GenerateJob:
    """One n-request of generation: ``count`` contiguous samples from ``first_sample``."""

    call_key: str
    endpoint: str
    temperature: float
    first_sample: int
    count: int
    order_base: int  # generation_order of sample 0 of this (generator, temperature)
    request: Request
    stage: ClassVar[str] = "generation"  # how a failure names it

    def place(self, i: int) -> PathPlace:
        s = self.first_sample + i
        key = keys.generated_path(self.endpoint, self.temperature, s)
        return PathPlace(key, Origin.GENERATED, None, s, self.order_base + s)


@dataclass(frozen=True, slots=True)
class WriteJob:
    """One refinement or regeneration: the path it writes, from which parent."""

    call_key: str
    role: Role  # the refiner or the regenerator
    path_key: str
    parent_id: int | None
    sample_index: int
    request: Request
    count: ClassVar[int] = 1  # one path per request

    @property
    def stage(self) -> str:
        return self.role.value

    def place(self, i: int) -> PathPlace:
        return PathPlace(
            self.path_key, self.role.writes, self.parent_id, self.sample_index, 1000 + self.sample_index
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """A tier's decision: the accepted paths in rank order, or none and why."""

    accepted: list[AcceptedRef]
    rejection_reason: str | None = None


def waiting(out: CallOutcome) -> bool:
    """The call waits on a batch endpoint's answer: nothing happened that a call row should record (the
    request's own row is in ``batch_requests``); the call is recorded once its answer is back."""
    return out.error is not None and out.error.kind == BATCH_PENDING


def call_record(q: QuestionView, call_key: str, out: CallOutcome, origin: Provenance) -> CallRecord:
    first = out.completions[0] if out.completions else None
    finish = None
    if first is not None:
        finish = "length" if any(c.truncated for c in out.completions) else first.finish_reason
    return CallRecord(
        call_key=call_key,
        question_id=q.id,
        run_id=origin.run_id,
        role=out.role,
        endpoint=out.endpoint,
        model=out.model,
        temperature=out.sampling.temperature,
        top_p=out.sampling.top_p,
        max_tokens=min(  # the budget sent: the configured one, unless it was lowered to fit the context
            (c.max_tokens for c in out.completions if c.max_tokens is not None),
            default=out.sampling.max_tokens,
        ),
        seed=out.seed,
        n=out.n,
        prompt_sha256=out.prompt_sha256,
        request_id=first.request_id if first else None,
        prompt_tokens=out.prompt_tokens,
        completion_tokens=out.completion_tokens,
        latency_ms=out.latency_ms,
        finish_reason=finish,
        status="ok" if out.error is None else "error",
        error_kind=out.error.kind if out.error else None,
        error=redact(str(out.error))[:2000] if out.error else None,
        attempts=max(out.attempts, 1),
        prefect_flow_run_id=origin.prefect_flow_run_id,
        prefect_task_run_id=origin.prefect_task_run_id,
        created_at=now(),
        batch_id=first.batch_id if first else None,
        cached_prompt_tokens=out.cached_prompt_tokens,
    )


def path_record(
    q: QuestionView,
    out: CallOutcome,
    i: int,
    call_key: str,
    origin: Provenance,
    *,
    path_key: str,
    kind: str,
    parent: int | None,
    sample_index: int,
    generation_order: int,
) -> PathRecord:
    """Choice ``i`` of ``out`` as a stored path (``kind``: generated | refined | regenerated)."""
    c = out.completions[i]
    clean = clean_reasoning(c.text)
    return PathRecord(
        question_id=q.id,
        path_key=path_key,
        origin=kind,
        role=out.role,
        parent_path_id=parent,
        call_key=call_key,
        run_id=origin.run_id,
        endpoint=out.endpoint,
        model=out.model,
        temperature=out.sampling.temperature,
        sample_index=sample_index,
        generation_order=generation_order,
        prompt_sha256=out.variant_sha256(i),
        raw_text=c.text,
        clean_text=clean,
        extracted_answer=extract_answer(clean, q.options),
        finish_reason=c.finish_reason,
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        latency_ms=c.latency_ms,
        created_at=now(),
    )
