"""Chat completions over HTTP from vLLM's OpenAI-compatible server (or any compatible endpoint).

One pooled keep-alive session per endpoint, and a semaphore that keeps at most ``max_in_flight``
requests on the wire: enough to keep vLLM's continuous batching full, never enough to flood it.
Retries live here and only here: 429, 5xx, timeouts, connection failures and unusable bodies are
retried with exponential backoff and full jitter (honouring ``Retry-After``); any other 4xx is final
and raised at once (``client_error`` for a refused request, ``endpoint_refused`` for a wrong key, URL or
route). A circuit breaker (``llm/breaker.py``) ends the retrying when the whole endpoint is down. A slot is released while a request sleeps before its retry,
so one struggling request never holds capacity the others could use.

Before a request is sent, its ``max_tokens`` is lowered to the room its prompt leaves in the endpoint's
context (``llm/context.py``: an estimate of the prompt, never the server's tokenizer) rather than drawing a
400 that would set the question aside; a request with less room than a minimal completion is not sent at
all (``context_exceeded``, final). The budget sent is on each completion (``Completion.max_tokens``).

Before a slot is taken, a request waits for the endpoint's rate limits (``llm/rate_limit.py``: the pipeline
file's ``requests_per_minute``/``tokens_per_minute`` and the server's ``x-ratelimit-*`` headers), so the wait
neither counts against its timeout nor holds a slot.

Redirects are never followed: a 307/308 would re-send the prompt (medical text) and the key's request to
whatever origin the server names, so any 3xx is ``endpoint_refused`` (fix base_url). A body larger than
``max_response_bytes`` is refused unread, and server strings are cut to the columns that store them.

The HTTP client is aiohttp, not httpx, by measurement (bench/llm_client.py, 2 cores, loopback): at
cap 256 httpx/httpcore 1.0.9 spent 79 ms of client CPU per request and reached 5% of the ideal
throughput, because its pool recounts idle connections for every idle connection on each request
(quadratic in the pool size); aiohttp's pool needs about 0.25 ms per request at any cap.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import yarl

from reasonmed.config import ConfigError, EndpointConfig
from reasonmed.llm.breaker import CircuitBreaker
from reasonmed.llm.context import ContextExceeded, declared_context, estimate_prompt_tokens, fit_max_tokens
from reasonmed.llm.rate_limit import RateLimiter, Slots
from reasonmed.llm.types import (
    FINISH_REASON_CHARS,
    MODEL_CHARS,
    REQUEST_ID_CHARS,
    Completion,
    ErrorKind,
    LLMError,
    Message,
)
from reasonmed.llm.urls import secrets_of, split_credentials
from reasonmed.llm.usage import UsageTracker
from reasonmed.redact import redact, redact_url

log = logging.getLogger(__name__)

_RETRY_AFTER_STATUSES = (429, 503)
# Answers that refuse every request, whatever it asks: a wrong key, URL or route (see llm/types.py).
_ENDPOINT_REFUSALS = frozenset({401, 403, 404, 405})
_JSON_HEADERS = {"Content-Type": "application/json"}
_READ_CHUNK = 1 << 16


class _TooLarge(Exception):
    pass


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, read in chunks and abandoned (connection closed) once it passes ``cap`` bytes."""
    if response.content_length is not None and response.content_length > cap:
        raise _TooLarge(f"response of {response.content_length:,} bytes exceeds max_response_bytes ({cap:,})")
    buf = bytearray()
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        buf += chunk
        if len(buf) > cap:
            raise _TooLarge(f"response exceeds max_response_bytes ({cap:,})")
    return bytes(buf)


def _origin(location: str | None) -> str:
    """Only scheme and host of a redirect target: its path or query may carry anything."""
    if not location:
        return "no location"
    try:
        url = yarl.URL(location)
    except ValueError:
        return "an unreadable location"
    return f"{url.scheme}://{url.host}" if url.host else "a relative location"


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One HTTP request of a logical call, before it is sent."""

    body: dict[str, Any]
    expected: int  # choices its response must hold
    index: int | None  # the choice index it answers (None: the response's own indices)
    tokens: int  # what it counts against the endpoint's token rate limit


class ChoicesIgnored(ValueError):
    """The engine answered one choice to a request for several: it ignores ``n`` (a configuration
    problem of the endpoint, final for every such request, not a glitch worth retrying)."""


class OpenAICompatibleBackend:
    """``POST {base_url}/chat/completions`` with pooling, a concurrency cap and classified retries."""

    def __init__(
        self,
        name: str,
        cfg: EndpointConfig,
        api_key: str | None = None,
        *,
        usage: UsageTracker | None = None,
        rng: random.Random | None = None,
        context_tokens: int | None = None,
        breaker: CircuitBreaker | None = None,
        slots: Slots | None = None,
    ) -> None:
        """``context_tokens``: the endpoint's context length as the preflight found it (llm/registry.py);
        None takes what the pipeline file declares, if anything. ``breaker``: one named for a replica
        (llm/replicas.py); default, the endpoint's own. ``slots``: this process's share of a cap held
        across orchestrators (llm/shared_caps.py); default, a semaphore of ``max_in_flight``."""
        if not cfg.base_url:
            raise ValueError(f"endpoint {name}: base_url is required for an OpenAI-compatible backend")
        self.name = name
        self.model = cfg.model
        self._cfg = cfg
        self.context_tokens = context_tokens if context_tokens is not None else declared_context(cfg).tokens
        # Credentials in the URL's userinfo become a Basic auth header, and the URL kept (for requests, repr
        # and messages) holds none; with an API key as well there would be two Authorization headers.
        base, self._basic = split_credentials(cfg.base_url.rstrip("/"))
        if self._basic is not None and api_key:
            raise ConfigError(
                f"endpoints.{name}.base_url carries credentials and an API key is configured: use one of them"
            )
        self._url = base + "/chat/completions"
        self._usage = usage
        self._rng = rng or random.Random()
        self._slots: Slots = slots or asyncio.Semaphore(cfg.max_in_flight)
        self.rate = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self.breaker = breaker or CircuitBreaker(
            name, window_s=cfg.breaker_window_s, min_failures=cfg.breaker_min_failures
        )
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # Kept only to mask them in any server-supplied text we put in an error message.
        self._secrets = secrets_of(self._basic, api_key)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(name={self.name!r}, model={self.model!r}, url={redact_url(self._url)!r})"

    def _client(self) -> aiohttp.ClientSession:
        """The endpoint's one session, made on first use inside the running loop (aiohttp requires it)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._cfg.max_in_flight,  # the pool is sized to the cap: a slot always finds a connection
                limit_per_host=0,
                keepalive_timeout=60.0,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                auth=self._basic,
                # sock_read cuts a silent server; total also cuts one that trickles bytes forever.
                timeout=aiohttp.ClientTimeout(
                    total=self._cfg.connect_timeout_s + self._cfg.timeout_s,
                    sock_connect=self._cfg.connect_timeout_s,
                    sock_read=self._cfg.timeout_s,
                ),
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ public API

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
        """``n`` choices, index ``i`` being the i-th; with a seed, choice i is reproducible as seed + i.
        ``affinity`` chooses a replica (llm/replicas.py); one server has nothing to choose."""
        planned = self.plan(
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            n=n,
            seed=seed,
            stop=stop,
            response_format=response_format,
        )
        if len(planned) == 1:
            p = planned[0]
            return await self._post(p.body, expected=p.expected, index=p.index, tokens=p.tokens)
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(self._post(p.body, expected=p.expected, index=p.index, tokens=p.tokens))
                for p in planned
            ]
        return [t.result()[0] for t in tasks]

    def plan(
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
    ) -> list[PlannedRequest]:
        """The HTTP request bodies that ask for ``n`` choices: one request with ``n`` where the server samples
        several at once, else ``n`` requests, choice i seeded seed + i. Shared by the batch mode
        (``llm/batch.py``), which writes these bodies to its files instead of sending them."""
        if n < 1:
            raise ValueError(f"n must be >= 1 (got {n})")
        prompt_tokens = estimate_prompt_tokens(messages)
        max_tokens = self._fit(prompt_tokens, max_tokens)
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if (
            self._cfg.reasoning_model
        ):  # o1-class: a fixed sampler, and a budget that covers its hidden reasoning
            body["max_completion_tokens"] = max_tokens
        else:
            body |= {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        if stop is not None:
            body["stop"] = stop if isinstance(stop, str) else list(stop)
        if response_format is not None:
            body["response_format"] = dict(response_format)
        if n == 1 or self._cfg.supports_n:
            if n > 1:
                body["n"] = n  # one request: vLLM computes the shared prompt's prefill once
            if seed is not None:
                body["seed"] = seed
            return [PlannedRequest(body, n, None, prompt_tokens + n * max_tokens)]
        # The server cannot sample n at once: n requests, choice i seeded seed + i.
        return [
            PlannedRequest(
                body if seed is None else {**body, "seed": seed + i}, 1, i, prompt_tokens + max_tokens
            )
            for i in range(n)
        ]

    def _fit(self, prompt_tokens: int, max_tokens: int) -> int:
        """``max_tokens`` lowered to fit the context; LLMError ``context_exceeded`` (unsent) if nothing fits."""
        try:
            fitted = fit_max_tokens(prompt_tokens, max_tokens, self.context_tokens)
        except ContextExceeded as exc:
            if self._usage is not None:
                self._usage.record_failure(self.name, self.model)
            log.warning("endpoint %s: not sent: context_exceeded (%s)", self.name, exc)
            raise exc.error(self.name) from None
        if fitted < max_tokens:
            log.debug(
                "endpoint %s: max_tokens %d lowered to %d to fit the context", self.name, max_tokens, fitted
            )
        return fitted

    # ------------------------------------------------------------------ one logical request

    async def _post(
        self, body: dict[str, Any], *, expected: int, index: int | None, tokens: int
    ) -> list[Completion]:
        """One logical request; ``tokens`` is what each attempt counts against the endpoint's rate limits."""
        payload = json.dumps(body).encode()
        budget = body.get("max_tokens", body.get("max_completion_tokens"))
        max_attempts = self._cfg.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            self.breaker.check()  # an endpoint known to be down gets no more requests
            async with self.rate.admit(tokens, self._slots):  # paced before the slot, outside the timeout
                session = self._client()
                started = time.perf_counter()
                try:
                    async with session.post(
                        self._url, data=payload, headers=_JSON_HEADERS, allow_redirects=False
                    ) as response:
                        status = response.status
                        self.rate.observe(response.headers)
                        raw = await _read_capped(response, self._cfg.max_response_bytes)
                        latency_ms = (time.perf_counter() - started) * 1000.0
                        kind, detail, retry_after = self._status_problem(status, response.headers, raw)
                    if kind is None:
                        try:
                            completions, usage = self._parse(raw, expected, index, latency_ms, budget)
                        except ChoicesIgnored as exc:  # every n > 1 request will fail the same way
                            kind, detail = "endpoint_refused", str(exc)
                        except ValueError as exc:
                            kind, detail = "bad_response", str(exc)
                        else:
                            if self._usage is not None:
                                self._usage.record(self.name, self.model, *usage)
                            self.breaker.record(None)
                            return completions
                except _TooLarge as exc:
                    kind, detail = "bad_response", str(exc)
                except TimeoutError as exc:  # aiohttp's socket timeouts subclass TimeoutError too
                    kind, detail = "timeout", self._timeout_detail(exc)
                except aiohttp.InvalidURL as exc:
                    kind, detail = "endpoint_refused", f"invalid URL: {exc}"
                except (aiohttp.ClientError, OSError) as exc:
                    kind, detail = "connection", f"{type(exc).__name__}: {exc}"
            self.breaker.record(kind, self._scrub(f"{kind} ({detail})"))

            error = LLMError(
                self._scrub(f"endpoint {self.name}: {kind} ({detail}) after {attempt} attempt(s)"),
                kind=kind,
                attempts=attempt,
                status_code=status,
                endpoint=self.name,
            )
            if not error.retryable or attempt >= max_attempts:
                if self._usage is not None:
                    self._usage.record_failure(self.name, self.model)
                log.warning(
                    "endpoint %s: giving up: kind=%s attempts=%d status=%s", self.name, kind, attempt, status
                )
                raise error
            delay = self._backoff(attempt, retry_after)
            if self._usage is not None:
                self._usage.record_retry(self.name, self.model)
            log.log(
                logging.INFO if kind == "rate_limited" else logging.WARNING,
                "endpoint %s: retrying: kind=%s attempt=%d/%d status=%s delay=%.2fs",
                self.name,
                kind,
                attempt,
                max_attempts,
                status,
                delay,
            )
            await asyncio.sleep(delay)  # outside the semaphore: the slot serves others meanwhile

    def _timeout_detail(self, exc: TimeoutError) -> str:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"no connection within {self._cfg.connect_timeout_s:g}s"
        return f"no complete response within {self._cfg.timeout_s:g}s"

    def _status_problem(
        self, code: int, headers: Mapping[str, str], raw: bytes
    ) -> tuple[ErrorKind | None, str, float | None]:
        if 200 <= code < 300:
            return None, "", None
        if 300 <= code < 400:  # never followed: the prompt must not be re-sent where the server points
            return (
                "endpoint_refused",
                f"HTTP {code} redirect to {_origin(headers.get('Location'))} not followed; set base_url to the final URL",
                None,
            )
        retry_after = parse_retry_after(headers.get("Retry-After")) if code in _RETRY_AFTER_STATUSES else None
        # Masked before it is cut, so a cut cannot split a credential out of the pattern that finds it.
        snippet = " ".join(self._scrub(raw[:4096].decode("utf-8", "replace")).split())[:300]
        if code == 429:
            return "rate_limited", f"HTTP 429 {snippet}".strip(), retry_after
        if code >= 500:
            return "server_error", f"HTTP {code} {snippet}".strip(), retry_after
        if code == 408:
            return "timeout", f"HTTP 408 {snippet}".strip(), None
        if code in _ENDPOINT_REFUSALS:
            return "endpoint_refused", f"HTTP {code} {snippet}".strip(), None
        return "client_error", f"HTTP {code} {snippet}".strip(), None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (uniform in [0, min(max, base * 2^(attempt-1))]); a server's Retry-After is a floor.

        Retry-After is honoured up to ``backoff_max_s`` so a misbehaving server cannot park a night's run.
        """
        cap = min(self._cfg.backoff_max_s, self._cfg.backoff_base_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._cfg.backoff_max_s))
        return delay

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)

    # ------------------------------------------------------------------ parsing

    def _parse(
        self, raw: bytes, expected: int, index: int | None, latency_ms: float, budget: int | None
    ) -> tuple[list[Completion], tuple[int | None, int | None]]:
        """Completions (and the request's token usage) from a 200 body; any shape problem is a
        ValueError, i.e. a bad_response, which is retried."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # a body nested too deep
            raise ValueError(f"body is not JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise ValueError("body is not a JSON object")
        choices = data.get("choices")
        if isinstance(choices, list) and len(choices) == 1 and expected > 1:
            raise ChoicesIgnored(
                f"asked for n={expected} choices, got 1: this engine samples one choice per request "
                "(llama.cpp, Ollama); set supports_n: false for this endpoint"
            )
        if not isinstance(choices, list) or len(choices) != expected:
            got = len(choices) if isinstance(choices, list) else "no"
            raise ValueError(f"expected {expected} choice(s), got {got}")
        texts: list[tuple[int, str, str | None]] = []
        for pos, choice in enumerate(choices):
            if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
                raise ValueError(f"choice {pos} has no message")
            message = choice["message"]
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise ValueError(f"choice {pos}: content is not a string")
            text = content or ""
            # vLLM's reasoning parsers move the think block aside; keep the raw text whole.
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                text = f"<think>\n{reasoning}\n</think>\n\n{text}"
            choice_index = choice.get("index", pos)
            if not isinstance(choice_index, int):
                raise ValueError(f"choice {pos}: index is not an integer")
            finish = choice.get("finish_reason")
            texts.append(
                (
                    choice_index if index is None else index,
                    text,
                    finish[:FINISH_REASON_CHARS] if isinstance(finish, str) else None,
                )
            )
        prompt_tokens, completion_total, cached = _usage_of(data)
        per_choice = _apportion(completion_total, [len(t) for _, t, _ in texts])
        model_field, id_field = data.get("model"), data.get("id")
        model = (model_field if isinstance(model_field, str) else self.model)[:MODEL_CHARS]
        request_id = id_field[:REQUEST_ID_CHARS] if isinstance(id_field, str) else None
        out = [
            Completion(
                text=text,
                finish_reason=finish,
                prompt_tokens=prompt_tokens,
                completion_tokens=per_choice[k],
                latency_ms=latency_ms,
                model=model,
                endpoint=self.name,
                request_id=request_id,
                index=idx,
                max_tokens=budget,
                cached_prompt_tokens=cached,
            )
            for k, (idx, text, finish) in enumerate(texts)
        ]
        out.sort(key=lambda c: c.index)
        return out, (prompt_tokens, completion_total)


def _usage_of(data: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """Prompt and completion tokens, and of the prompt what the prefix cache held
    (``usage.prompt_tokens_details.cached_tokens``: OpenAI; vLLM with ``--enable-prompt-tokens-details``);
    None for what the server does not say."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None, None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (
        p if isinstance(p, int) else None,
        c if isinstance(c, int) else None,
        cached if isinstance(cached, int) and not isinstance(cached, bool) and cached >= 0 else None,
    )


def _apportion(total: int | None, weights: list[int]) -> list[int | None]:
    """Split a request's completion tokens over its choices by text length (servers report only the sum)."""
    if total is None:
        return [None] * len(weights)
    if len(weights) == 1:
        return [total]
    if not sum(weights):
        weights = [1] * len(weights)
    wsum = sum(weights)
    raw = [total * w / wsum for w in weights]
    out = [int(r) for r in raw]
    for k in sorted(range(len(raw)), key=lambda k: raw[k] - out[k], reverse=True)[: total - sum(out)]:
        out[k] += 1
    return list(out)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
