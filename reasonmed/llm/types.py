"""What every chat backend returns and raises, so the pipeline never sees transport details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

ErrorKind = Literal[
    "rate_limited",
    "server_error",
    "timeout",
    "connection",
    "bad_response",
    "client_error",
    "endpoint_refused",
    "endpoint_down",
    "context_exceeded",
    "batch_pending",
]

# Kinds worth another attempt: the same request may well succeed later.
RETRYABLE_KINDS: frozenset[str] = frozenset(
    {"rate_limited", "server_error", "timeout", "connection", "bad_response"}
)
# The rest are final for the request:
# - client_error (400, 413, 422, ...): this request is refused (e.g. its prompt exceeds the context), and the
#   same request will be refused again: a permanent failure of the question that sent it;
# - endpoint_refused (401, 403, 404, 405): the endpoint refuses every request (key, URL or route is wrong):
#   a configuration problem, not the question's fault; it opens the endpoint's circuit breaker at once;
# - endpoint_down: the endpoint's circuit breaker is open, so the request was not sent at all;
# - context_exceeded: the prompt leaves less room in the endpoint's context than a minimal completion
#   (llm/context.py), so the request was not sent: the same question's request would not fit next time either.
# - batch_pending: not a failure. The request goes to the endpoint's Batch API (mode batch, llm/batch.py) and
#   its answer is not back yet: the question waits, and no attempt of it is spent.
BATCH_PENDING: ErrorKind = "batch_pending"
ENDPOINT_KINDS: frozenset[str] = frozenset({"endpoint_refused", "endpoint_down"})

Message = Mapping[str, str]

# Widths of the columns server-supplied strings are stored in (llm_calls / eval_results): longer values are
# cut to them, so a server's long id or finish reason cannot fail the insert.
FINISH_REASON_CHARS = 32
REQUEST_ID_CHARS = 200
MODEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Completion:
    """One choice of one chat request, with the provenance the pipeline stores beside the text."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    model: str
    endpoint: str
    request_id: str | None
    index: int
    max_tokens: int | None = None  # the budget the request was sent with (lowered to fit the context)
    batch_id: int | None = None  # the batch (llm_batches.id) that answered it, for endpoints with mode batch
    # Prompt tokens the server's prefix cache held (usage.prompt_tokens_details.cached_tokens, where reported)
    cached_prompt_tokens: int | None = None

    @property
    def truncated(self) -> bool:
        """Cut short by the token limit: unusable whatever it says (the one rule; agents/base.py re-asks)."""
        return self.finish_reason == "length"


class LLMError(Exception):
    """A request that did not produce a usable completion, classified so callers can decide what next.

    The message is built by the backend from the endpoint name, the kind and a short detail; it never
    includes request headers, so it cannot carry the API key.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        attempts: int = 1,
        status_code: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retryable: bool = kind in RETRYABLE_KINDS
        self.attempts = attempts
        self.status_code = status_code
        self.endpoint = endpoint

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to survive pickling (Prefect may pickle task exceptions).
        return (_rebuild_error, (str(self), self.kind, self.attempts, self.status_code, self.endpoint))


def _rebuild_error(
    message: str, kind: ErrorKind, attempts: int, status_code: int | None, endpoint: str | None
) -> LLMError:
    return LLMError(message, kind=kind, attempts=attempts, status_code=status_code, endpoint=endpoint)


@runtime_checkable
class ChatBackend(Protocol):
    """A served model the pipeline can ask for chat completions; implementations own retries and caps."""

    name: str
    model: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        top_p: float = 1.0,
        n: int = 1,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        response_format: Mapping[str, Any] | None = None,
        affinity: str | None = None,
    ) -> list[Completion]:
        """``affinity``: what keeps related requests on one replica (a question's content hash); a backend
        with one server ignores it."""
        ...

    async def aclose(self) -> None: ...
