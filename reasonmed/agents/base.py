"""What every agent shares: the question as the prompts see it, asking again when output is unusable, and
the judge that reads one path and answers in a form its parser reads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from reasonmed.llm.types import ChatBackend, Completion, LLMError, Message
from reasonmed.prompts import REASK_NOTES as REASK_NOTES  # re-exported for callers of ask()
from reasonmed.prompts import PromptTemplate, ReaskKind, get_template
from reasonmed.question_view import QuestionView as QuestionView  # re-exported: the agents' input

R = TypeVar("R")  # what a judge's reply parses into


@dataclass(frozen=True)
class Sampling:
    """How to decode: ``response_format`` constrains the reply to a JSON schema in the engine's dialect
    (``reasonmed/structured_output.py``); None leaves the model free."""

    temperature: float
    top_p: float
    max_tokens: int
    response_format: Mapping[str, Any] | None = None


@dataclass
class CallOutcome:
    """One logical request after transport retries and re-asks: what the call log records.

    ``completions`` holds the last completion per choice (accepted or not); ``accepted[i]`` says
    whether choice i passed the agent's check. Tokens add up every attempt, since every attempt cost.
    """

    role: str
    endpoint: str
    model: str
    sampling: Sampling
    seed: int | None
    n: int
    template: PromptTemplate  # as configured: its sha is the stage key
    completions: list[Completion] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    attempts: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int | None = None  # None: the server never said
    completion_tokens: int = 0
    latency_ms: float = 0.0
    error: LLMError | None = None
    # Per choice, the template variant whose rendering produced its final completion (re-asks included).
    variants: list[PromptTemplate] = field(default_factory=list)
    last_sent: PromptTemplate | None = None  # the variant of the last request made

    @property
    def template_sha256(self) -> str:
        return self.template.sha256

    @property
    def prompt_sha256(self) -> str:
        """The sha of the exact template variant the call's last request sent."""
        return (self.last_sent or self.template).sha256

    def variant_sha256(self, i: int) -> str:
        return (self.variants[i] if i < len(self.variants) else self.template).sha256

    @property
    def ok(self) -> bool:
        return self.error is None and len(self.completions) == self.n


def derive_seed(base: int, *parts: object) -> int:
    """A stable per-request seed from the run's base seed and what the request is for.

    Leaves room below 2**31 for ``+ sample_index`` so vLLM (int32 seeds in some versions) accepts it.
    """
    digest = hashlib.sha256("|".join([str(base), *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1024)


def reask_kind(failed: Completion) -> ReaskKind:
    """Which re-ask note fits an unusable completion."""
    return "truncated" if failed.truncated else "unparseable"


def usable(completion: Completion, check: Callable[[str], object | None]) -> bool:
    """Truncated output, or output the role's parser rejects, is not usable."""
    return not completion.truncated and check(completion.text) is not None


async def ask(
    backend: ChatBackend,
    template: PromptTemplate,
    fields: dict[str, str],
    *,
    role: str,
    sampling: Sampling,
    seed: int | None,
    n: int = 1,
    check: Callable[[str], object | None],
    reasks: int,
    affinity: str | None = None,
) -> CallOutcome:
    """Ask for ``n`` choices; re-ask each choice that is truncated or unparseable, at most ``reasks``
    times, with the same seed and a note on what was wrong (the template's re-ask variant). Transport errors that
    survive the backend's own retries are returned in ``outcome.error``, never raised: the caller records them.
    ``affinity`` (the question's content hash) keeps a question's requests on one replica (llm/replicas.py).
    """
    messages = template.render(**fields)
    out = CallOutcome(
        role=role,
        endpoint=backend.name,
        model=backend.model,
        sampling=sampling,
        seed=seed,
        n=n,
        template=template,
    )

    async def once(count: int, s: int | None, request: Sequence[Message] = messages) -> list[Completion]:
        try:
            got = await backend.complete(
                request,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                top_p=sampling.top_p,
                n=count,
                seed=s,
                response_format=sampling.response_format,
                affinity=affinity,
            )
        except LLMError as exc:
            out.attempts += exc.attempts
            raise
        out.attempts += 1
        # Every choice reports the request's prompt; it was processed once (vLLM shares the prefill).
        out.prompt_tokens += max((c.prompt_tokens or 0 for c in got), default=0)
        cached = [c.cached_prompt_tokens for c in got if c.cached_prompt_tokens is not None]
        if cached:
            out.cached_prompt_tokens = (out.cached_prompt_tokens or 0) + max(cached)
        out.completion_tokens += sum(c.completion_tokens or 0 for c in got)
        return got

    try:
        out.last_sent = template
        first = sorted(await once(n, seed), key=lambda c: c.index)
        out.completions = first
        out.variants = [template] * len(first)
        out.accepted = [usable(c, check) for c in first]
        for _ in range(reasks):
            retry = [i for i, ok in enumerate(out.accepted) if not ok]
            if not retry:
                break
            variants = [template.reask(reask_kind(out.completions[i])) for i in retry]
            out.last_sent = variants[-1]
            again = await asyncio.gather(
                *(
                    once(1, None if seed is None else seed + i, v.render(**fields))
                    for i, v in zip(retry, variants, strict=True)
                )
            )
            for i, v, got in zip(retry, variants, again, strict=True):
                out.completions[i] = got[0]
                out.variants[i] = v
                out.accepted[i] = usable(got[0], check)
    except LLMError as exc:
        out.error = exc
    if out.completions:
        out.latency_ms = max(c.latency_ms for c in out.completions)
    return out


async def ask_parsed(
    backend: ChatBackend,
    template: PromptTemplate,
    fields: dict[str, str],
    *,
    role: str,
    sampling: Sampling,
    seed: int,
    attempts: int,
    parse: Callable[[str], R | None],
    affinity: str | None = None,
) -> tuple[CallOutcome, R | None]:
    """One choice, asked at most ``attempts`` times until ``parse`` reads it: the call, and what its reply
    parsed into. ``None`` with a successful call means no attempt produced a reply ``parse`` reads."""
    call = await ask(
        backend,
        template,
        fields,
        role=role,
        sampling=sampling,
        seed=seed,
        check=parse,
        reasks=attempts - 1,
        affinity=affinity,
    )
    if call.error is not None or not call.accepted[0]:
        return call, None
    return call, parse(call.completions[0].text)


@dataclass(frozen=True)
class PathJudge(Generic[R]):
    """An agent that reads one path of a question and answers in a form ``parse`` reads: the ranker, the
    summarizer, and the verifier before it reads its verdict further."""

    role: str  # as the call log names it
    prompt: str  # the template it asks with when the pipeline file gives none
    parse: Callable[[str], R | None]

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
    ) -> tuple[CallOutcome, R | None]:
        return await ask_parsed(
            backend,
            template or get_template(self.prompt),
            q.prompt_fields() | {"path": path_text},
            role=self.role,
            sampling=sampling,
            seed=seed,
            attempts=attempts,
            parse=self.parse,
            affinity=q.content_hash,
        )
