"""What a failed stage means for its question, in one place: who retries what, and when to give up.

Retry layers, one per kind of failure (each bounded; none multiplies another):

| failure | owner | bound |
|---|---|---|
| transient request failure (timeout, connection, 429, 5xx, unreadable body) | the HTTP client (``llm/openai_backend.py``) | ``max_retries`` + 1 attempts per request, backoff with jitter |
| a whole endpoint down | the circuit breaker (``llm/breaker.py``) | ``breaker_window_s``; then no request is sent and the run ends |
| unusable content (truncated, unparseable) | the agent's re-ask (``agents/base.py``) | ``output_retries`` / ``parse_attempts`` |
| lost or locked database connection | the Prefect task retry (``tasks/retry.py``) | 2 retries |
| a stage that still failed | the question's attempt budget (here) | ``question_attempts`` per stage across runs; one attempt per run |

So the requests one question can cause are bounded by
``question_attempts x sum over its logical requests of (max_retries + 1) x (1 + re-asks)``, and a
permanent failure (the endpoint refused this request, e.g. HTTP 400 "maximum context length exceeded", or
the client did not send it because not even a minimal completion fits the context, ``context_exceeded``;
content that stayed unusable after every re-ask; a bug) costs exactly one attempt: another would meet
the same answer, so the question is set aside at once. A failure that is the endpoint's fault (its
breaker is open, or it refuses every request) does not count against the question at all, nor does a stage
that waits on a batch endpoint's answers (``batch_pending``, ``llm/batch.py``): the question goes on once they
are back. A batch request that failed (an error line, an expired batch) is a request failure like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

from reasonmed.agents.base import CallOutcome, QuestionView
from reasonmed.attempts import FailureClass as FailureClass  # re-exported with the rule's table above
from reasonmed.attempts import StageFailure as StageFailure
from reasonmed.attempts import sets_aside as sets_aside
from reasonmed.incomplete import Incomplete
from reasonmed.llm.types import BATCH_PENDING, ENDPOINT_KINDS, RETRYABLE_KINDS
from reasonmed.pipeline.records import waiting
from reasonmed.redact import redact
from reasonmed.roles import Stage

STAGES = tuple(Stage)


class StageIncomplete(Incomplete):
    """A stage could not finish for its question; what succeeded is saved.

    ``error_kinds`` are the LLM error kinds of the requests that failed (after the client's retries);
    ``unusable`` says the stage's content stayed unusable after every re-ask.
    """

    def __init__(self, message: str, *, error_kinds: Iterable[str] = (), unusable: bool = False) -> None:
        super().__init__(message)
        self.error_kinds = tuple(error_kinds)
        self.unusable = unusable

    @property
    def waiting(self) -> bool:
        """Every failed request waits on a batch endpoint's answer: the stage waits, nothing failed."""
        return bool(self.error_kinds) and set(self.error_kinds) == {BATCH_PENDING}

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (str(self), self.error_kinds, self.unusable))


@dataclass(frozen=True, slots=True)
class Waiting:
    """What a stage's Prefect task returns when its question waits on batch results (a task that raised
    would end Failed and log an error for what is no failure); the flow raises ``incomplete`` again."""

    message: str

    @property
    def incomplete(self) -> StageIncomplete:
        return StageIncomplete(self.message, error_kinds=[BATCH_PENDING])


def _rebuild(message: str, error_kinds: tuple[str, ...], unusable: bool) -> StageIncomplete:
    return StageIncomplete(message, error_kinds=error_kinds, unusable=unusable)


def classify(stage: str, exc: BaseException) -> StageFailure:
    message = redact(f"{type(exc).__name__}: {exc}")[:2000]
    if isinstance(exc, StageIncomplete):
        if exc.waiting:
            return StageFailure(stage, "waiting", BATCH_PENDING, message)
        kinds = set(exc.error_kinds) - {BATCH_PENDING}
        if kinds & ENDPOINT_KINDS:
            return StageFailure(stage, "endpoint", sorted(kinds & ENDPOINT_KINDS)[0], message)
        if kinds - RETRYABLE_KINDS:
            return StageFailure(stage, "permanent", sorted(kinds - RETRYABLE_KINDS)[0], message)
        if exc.unusable and not kinds:
            return StageFailure(stage, "permanent", "unusable_output", message)
        return StageFailure(stage, "transient", sorted(kinds)[0] if kinds else "incomplete", message)
    if isinstance(exc, OperationalError | InterfaceError | TimeoutError | ConnectionError):
        return StageFailure(
            stage,
            "transient",
            "database" if isinstance(exc, OperationalError | InterfaceError) else type(exc).__name__,
            message,
        )
    # Anything else is a bug or bad data: the next attempt would fail the same way.
    return StageFailure(stage, "permanent", type(exc).__name__[:32], message)


def _failures(outcomes: Sequence[CallOutcome]) -> list[str]:
    return [f"{o.role} on {o.endpoint}: {o.error.kind}: {o.error}" for o in outcomes if o.error is not None]


def raise_if_failed(stage: str, q: QuestionView, outcomes: Sequence[CallOutcome]) -> None:
    """A stage whose requests failed (after the client's retries) ends here, its successes already saved: it
    waits when every failure waits on a batch endpoint's answer, else it failed with those error kinds."""
    failed = _failures(outcomes)
    if failed and all(waiting(o) for o in outcomes if o.error is not None):
        raise StageIncomplete(
            f"{stage} of question {q.id}: waits on {len(failed)} batch request(s)",
            error_kinds=[o.error.kind for o in outcomes if o.error is not None],
        )
    if failed:
        raise StageIncomplete(
            f"{stage} of question {q.id}: {len(failed)} request(s) failed; first: {failed[0]}",
            error_kinds=[o.error.kind for o in outcomes if o.error is not None],
        )
