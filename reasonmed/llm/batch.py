"""Endpoints with ``mode: batch``: requests go to the OpenAI Batch API (half the price, answered within 24 h)
instead of one by one. ``vllm run-batch`` reads the same JSONL, so a GPU node can serve it offline too.

The stages do not change. They ask this backend as they ask any other; what it answers depends on what the
database holds for the request, named by ``custom_id``, a fingerprint of the request's body (endpoint, model,
messages, sampling, seed), so the same request asked by a later run finds its row:
- nothing yet: the request is queued for this run's next batch, and ``batch_pending`` is raised. Its question
  waits (``pipeline/failures.py``: no attempt spent) and goes on in a later run, or in this one once it has
  waited for its batches (``--batch-wait``);
- submitted: ``batch_pending`` again;
- completed: the stored response, parsed exactly as an interactive response, with ``batch_id`` set;
- failed (a line of the error file, or no line at all in an expired or cancelled batch): the failure is handed
  to the question once, as a request that failed after its retries (its attempt budget counts it), and the
  next ask submits the request again under the next attempt. So a batch failure is retried within the
  question's budget, never lost and never sent twice at once.

Queued requests go out in ``submit`` (the build calls it after each shard and at the end): split to the API's
limits (requests and bytes per file), each batch recorded before its upload, its requests taken by unique
key (two workers never send the same request), the file uploaded (``/v1/files``), the batch created
(``/v1/batches``) with the submission key as metadata. ``collect`` (at the start of a run, and while one
waits) polls the open batches and stores the results of finished ones, streaming the files line by line.
A run killed between upload and record finds its batch again by that key; one that never reached the API
gives its requests back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from sqlalchemy import Engine

from reasonmed.config import EndpointConfig
from reasonmed.db import batch_repo
from reasonmed.db.batch_repo import FINAL_STATUSES, Queued, RequestResult, StoredRequest
from reasonmed.llm.openai_backend import OpenAICompatibleBackend, PlannedRequest
from reasonmed.llm.types import BATCH_PENDING, RETRYABLE_KINDS, Completion, ErrorKind, LLMError, Message
from reasonmed.llm.usage import UsageTracker

log = logging.getLogger(__name__)

CHAT_ROUTE = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"  # the only window the API offers
SUBMISSION_KEY = "reasonmed_submission"  # batch metadata: finds a batch whose creation was not recorded
PREPARING_GRACE_S = 3600.0  # a batch still "preparing" this long after its row was written was left behind
LIST_PAGES = 20  # pages of 100 batches searched for a lost submission: bounded, newest first
_LINE_CAP = 64 << 20  # one line of an output file; longer is unreadable (the request fails, bad_response)

# What a request that no file line answers failed with, by the batch's final status.
_UNANSWERED: dict[str, tuple[ErrorKind, str]] = {
    "expired": ("timeout", "the batch expired (24 h window) before this request ran"),
    "cancelled": ("server_error", "the batch was cancelled before this request ran"),
    "failed": ("server_error", "the batch failed validation"),
    "completed": ("bad_response", "the completed batch's files have no line for this request"),
}


def custom_id(endpoint: str, body: Mapping[str, Any]) -> str:
    """The request's name in batch files and in ``batch_requests``: its body's fingerprint."""
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, separators=(",", ":"))
    return "rm-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def batch_line(cid: str, body: Mapping[str, Any]) -> bytes:
    line = {"custom_id": cid, "method": "POST", "url": CHAT_ROUTE, "body": body}
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def split_batches(
    queued: Sequence[Queued], max_requests: int, max_bytes: int
) -> tuple[list[list[Queued]], list[Queued]]:
    """Batch files within the API's limits, in order; and the requests too large for any file."""
    files: list[list[Queued]] = []
    too_large: list[Queued] = []
    size = 0
    for q in queued:
        if len(q.line) > max_bytes:
            too_large.append(q)
            continue
        if not files or len(files[-1]) >= max_requests or size + len(q.line) > max_bytes:
            files.append([])
            size = 0
        files[-1].append(q)
        size += len(q.line)
    return files, too_large


def status_kind(code: int | None) -> ErrorKind:
    """An error line's HTTP status as the interactive client would classify it."""
    if code is None:
        return "server_error"
    if code == 429:
        return "rate_limited"
    if code == 408:
        return "timeout"
    if code >= 500:
        return "server_error"
    if code in (401, 403, 404, 405):
        return "endpoint_refused"
    return "client_error"


def read_line(raw: bytes) -> RequestResult | None:
    """One line of an output or error file (None for a line without a custom_id: nothing to attach it to)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        return None
    cid = data["custom_id"]
    response = data.get("response")
    error = data.get("error")
    if (
        isinstance(response, dict)
        and response.get("status_code") == 200
        and isinstance(response.get("body"), dict)
    ):
        body = response["body"]
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return RequestResult(
            cid,
            True,
            response=json.dumps(body),
            prompt_tokens=p if isinstance(p, int) else None,
            completion_tokens=c if isinstance(c, int) else None,
        )
    code = response.get("status_code") if isinstance(response, dict) else None
    detail = ""
    if isinstance(response, dict) and isinstance(response.get("body"), dict):
        err = response["body"].get("error")
        detail = str(err.get("message", "")) if isinstance(err, dict) else ""
    if isinstance(error, dict):
        detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        if error.get("code") == "batch_expired":
            return RequestResult(cid, False, error_kind="timeout", error=f"batch line: {detail}")
    kind = status_kind(code if isinstance(code, int) else None)
    return RequestResult(cid, False, error_kind=kind, error=f"batch line: HTTP {code} {detail}".strip())


@dataclass(frozen=True, slots=True)
class Collected:
    """What one ``collect`` found: batches finished and stored, and those still open."""

    stored: int = 0
    still_open: int = 0
    completed_requests: int = 0
    failed_requests: int = 0


class BatchBackend(OpenAICompatibleBackend):
    """An OpenAI-compatible endpoint reached through its Batch API; see the module's docstring."""

    def __init__(
        self,
        name: str,
        cfg: EndpointConfig,
        api_key: str | None = None,
        *,
        engine: Engine,
        usage: UsageTracker | None = None,
        context_tokens: int | None = None,
    ) -> None:
        super().__init__(name, cfg, api_key, usage=usage, context_tokens=context_tokens)
        self._engine = engine
        self._base = self._url.removesuffix("/chat/completions")
        self._queue: dict[str, Queued] = {}

    def __repr__(self) -> str:
        return f"BatchBackend(name={self.name!r}, model={self.model!r})"

    @property
    def queued(self) -> int:
        """Requests waiting for this run's next batch."""
        return len(self._queue)

    # ------------------------------------------------------------------ what a stage's request gets

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
        names = [custom_id(self.name, p.body) for p in planned]
        stored = await asyncio.to_thread(batch_repo.lookup, self._engine, names)
        out: list[Completion] = []
        pending = 0
        failure: LLMError | None = None
        for p, cid in zip(planned, names, strict=True):
            row = stored.get(cid)
            if row is None or (row.status == "failed" and row.consumed):
                self._enqueue(cid, 1 if row is None else row.attempt + 1, p.body)
                pending += 1
            elif row.status == "submitted":
                pending += 1
            elif row.status == "completed":
                out += self._answer(row, p)
            elif await asyncio.to_thread(batch_repo.consume_failure, self._engine, row.row_id):
                failure = failure or self._failure(row)
            else:  # another worker handed this failure over a moment ago; it submits the request again
                pending += 1
        if failure is not None:
            raise failure
        if pending:
            raise LLMError(
                f"endpoint {self.name}: {pending} request(s) wait on the Batch API",
                kind=BATCH_PENDING,
                attempts=0,
                endpoint=self.name,
            )
        return sorted(out, key=lambda c: c.index)

    def _enqueue(self, cid: str, attempt: int, body: Mapping[str, Any]) -> None:
        if cid not in self._queue:
            self._queue[cid] = Queued(cid, attempt, batch_line(cid, body))

    def _answer(self, row: StoredRequest, p: PlannedRequest) -> list[Completion]:
        """A stored response, read as the interactive client reads a 200 body."""
        budget = p.body.get("max_tokens", p.body.get("max_completion_tokens"))
        try:
            completions, usage = self._parse((row.response or "").encode(), p.expected, p.index, 0.0, budget)
        except ValueError as exc:
            raise LLMError(
                self._scrub(f"endpoint {self.name}: bad_response (stored batch response: {exc})"),
                kind="bad_response",
                endpoint=self.name,
            ) from None
        if self._usage is not None:
            self._usage.record(self.name, self.model, *usage)
        return [replace(c, batch_id=row.batch_id) for c in completions]

    def _failure(self, row: StoredRequest) -> LLMError:
        kind: ErrorKind = row.error_kind if row.error_kind in _KINDS else "server_error"  # type: ignore[assignment]
        if self._usage is not None:
            self._usage.record_failure(self.name, self.model)
        return LLMError(
            self._scrub(f"endpoint {self.name}: {kind} (batch request, attempt {row.attempt}: {row.error})"),
            kind=kind,
            endpoint=self.name,
        )

    # ------------------------------------------------------------------ submitting

    async def submit(self, *, worker: str, run_id: int | None) -> list[int]:
        """Send every queued request in batches within the API's limits; returns the batches' row ids.

        A batch that cannot be uploaded or created after the client's retries is abandoned (its requests are
        asked again by the next run) and counts against the endpoint's circuit breaker."""
        queued, self._queue = list(self._queue.values()), {}
        if not queued:
            return []
        files, too_large = split_batches(queued, self._cfg.batch_max_requests, self._cfg.batch_max_bytes)
        for q in too_large:
            await asyncio.to_thread(
                batch_repo.fail_unsent,
                self._engine,
                endpoint=self.name,
                custom_id=q.custom_id,
                attempt=q.attempt,
                kind="client_error",
                error=f"its batch line ({len(q.line):,} bytes) exceeds batch_max_bytes ({self._cfg.batch_max_bytes:,})",
            )
        submitted: list[int] = []
        for requests in files:
            started = await asyncio.to_thread(
                batch_repo.start_batch,
                self._engine,
                endpoint=self.name,
                model=self.model,
                worker=worker,
                run_id=run_id,
                queued=requests,
            )
            if started is None:
                continue  # another worker took every one of these requests
            batch_id, key, mine = started
            try:
                file_id = await self._upload(b"".join(q.line for q in mine), f"reasonmed-{key}.jsonl")
                remote = await self._api_json(
                    "POST",
                    "/batches",
                    {
                        "input_file_id": file_id,
                        "endpoint": CHAT_ROUTE,
                        "completion_window": COMPLETION_WINDOW,
                        "metadata": {SUBMISSION_KEY: key},
                    },
                )
                remote_id = str(remote["id"])
            except (LLMError, KeyError, TypeError) as exc:
                freed = await asyncio.to_thread(batch_repo.abandon_batch, self._engine, batch_id, str(exc))
                log.warning(
                    "endpoint %s: batch not submitted (%s); %d request(s) go back", self.name, exc, freed
                )
                continue
            await asyncio.to_thread(
                batch_repo.mark_submitted,
                self._engine,
                batch_id,
                remote_id=remote_id,
                input_file_id=file_id,
                status=str(remote.get("status") or "validating"),
            )
            log.info("endpoint %s: batch %s submitted with %d request(s)", self.name, remote_id, len(mine))
            submitted.append(batch_id)
        return submitted

    async def _upload(self, content: bytes, filename: str) -> str:
        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", content, filename=filename, content_type="application/jsonl")
            return data

        info = await self._api_json("POST", "/files", form=form)
        return str(info["id"])

    # ------------------------------------------------------------------ collecting

    async def collect(self, is_dead: Callable[[str], bool] = lambda _worker: False) -> Collected:
        """Poll this endpoint's open batches and store the results of those that finished."""
        stored = still_open = done = failed = 0
        for b in await asyncio.to_thread(batch_repo.open_batches, self._engine, self.name):
            remote_id = b.remote_id
            if remote_id is None:
                if not (is_dead(b.worker) or batch_repo.stale_after(b.created_at, PREPARING_GRACE_S)):
                    still_open += 1  # its worker may still be uploading it
                    continue
                remote_id = await self._recover(b.id, b.submission_key)
                if remote_id is None:
                    continue
            info = await self._api_json("GET", f"/batches/{remote_id}")
            status = str(info.get("status"))
            if status not in FINAL_STATUSES:
                if status != b.status:
                    await asyncio.to_thread(batch_repo.set_status, self._engine, b.id, status)
                still_open += 1
                continue
            d, f = await self._store(b.id, info, status)
            stored += 1
            done += d
            failed += f
        return Collected(stored, still_open, done, failed)

    async def _recover(self, batch_id: int, key: str) -> str | None:
        """A batch whose worker died before recording its creation: found by its key, else abandoned."""
        after: str | None = None
        for _ in range(LIST_PAGES):
            page = await self._api_json("GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
            listed = page.get("data")
            data: list[Any] = listed if isinstance(listed, list) else []
            for item in data:
                meta = item.get("metadata") if isinstance(item, dict) else None
                if isinstance(meta, dict) and meta.get(SUBMISSION_KEY) == key:
                    remote_id = str(item["id"])
                    await asyncio.to_thread(
                        batch_repo.mark_submitted,
                        self._engine,
                        batch_id,
                        remote_id=remote_id,
                        input_file_id=item.get("input_file_id"),
                        status=str(item.get("status")),
                    )
                    return remote_id
            if not page.get("has_more") or not data:
                break
            after = str(data[-1].get("id"))
        await asyncio.to_thread(
            batch_repo.abandon_batch,
            self._engine,
            batch_id,
            "its worker died before creating it; requests go back",
        )
        return None

    async def _store(self, batch_id: int, info: Mapping[str, Any], status: str) -> tuple[int, int]:
        output_id, error_id = info.get("output_file_id"), info.get("error_file_id")
        errors = info.get("errors")
        detail = None
        if isinstance(errors, dict) and isinstance(errors.get("data"), list) and errors["data"]:
            first = errors["data"][0]
            detail = f"{len(errors['data'])} error(s); first: {first.get('message') if isinstance(first, dict) else first}"
        await asyncio.to_thread(
            batch_repo.set_status,
            self._engine,
            batch_id,
            status,
            output_file_id=output_id if isinstance(output_id, str) else None,
            error_file_id=error_id if isinstance(error_id, str) else None,
            error=detail,
        )
        done = failed = 0
        for file_id in (output_id, error_id):
            if not isinstance(file_id, str) or not file_id:
                continue
            chunk: list[RequestResult] = []
            async for line in self._file_lines(file_id):
                result = read_line(line)
                if result is not None:  # a server's error text may echo what it was sent: masked
                    chunk.append(replace(result, error=self._scrub(result.error)) if result.error else result)
                if len(chunk) >= 500:
                    d, f = await asyncio.to_thread(batch_repo.store_lines, self._engine, batch_id, chunk)
                    done, failed, chunk = done + d, failed + f, []
            d, f = await asyncio.to_thread(batch_repo.store_lines, self._engine, batch_id, chunk)
            done, failed = done + d, failed + f
        kind, why = _UNANSWERED.get(status, ("server_error", f"the batch ended {status}"))
        price = (
            self._cfg.price_input_per_mtok,
            self._cfg.price_output_per_mtok,
            self._cfg.batch_price_factor,
        )
        unanswered = await asyncio.to_thread(
            batch_repo.close_batch,
            self._engine,
            batch_id,
            unanswered_kind=kind,
            unanswered_error=why + (f" ({detail})" if detail else ""),
            price_per_mtok=price,
        )
        log.info(
            "endpoint %s: batch %s %s: %d completed, %d failed, %d unanswered",
            self.name,
            info.get("id"),
            status,
            done,
            failed,
            unanswered,
        )
        return done, failed + unanswered

    async def _file_lines(self, file_id: str) -> AsyncIterator[bytes]:
        """A result file's lines, streamed (a file of 50,000 answers is not held whole)."""
        session = self._client()
        url = f"{self._base}/files/{file_id}/content"
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                kind, detail, _ = self._status_problem(
                    response.status, response.headers, await response.read()
                )
                raise LLMError(
                    self._scrub(f"endpoint {self.name}: {kind} (file {file_id}: {detail})"),
                    kind=kind or "bad_response",
                    endpoint=self.name,
                )
            buf = b""
            async for chunk in response.content.iter_chunked(1 << 16):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line
                if len(buf) > _LINE_CAP:
                    buf = b""  # an unreadable line; its request stays unanswered (bad_response)
            if buf.strip():
                yield buf

    # ------------------------------------------------------------------ the API's JSON routes

    async def _api_json(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        """One call of the files/batches API, retried as chat requests are (retryable kinds, backoff)."""
        url = self._base + path
        attempt = 0
        while True:
            attempt += 1
            self.breaker.check()
            status: int | None = None
            retry_after: float | None = None
            try:
                kwargs: dict[str, Any] = {"allow_redirects": False}
                if form is not None:
                    kwargs["data"] = form()
                elif payload is not None:
                    kwargs["json"] = dict(payload)
                async with self._client().request(method, url, **kwargs) as response:
                    status = response.status
                    raw = await response.read()
                    kind, detail, retry_after = self._status_problem(status, response.headers, raw)
                if kind is None:
                    try:
                        data = json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        data = None
                    if isinstance(data, dict):
                        self.breaker.record(None)
                        return data
                    kind, detail = "bad_response", "body is not a JSON object"
            except TimeoutError as exc:
                kind, detail = "timeout", self._timeout_detail(exc)
            except (aiohttp.ClientError, OSError) as exc:
                kind, detail = "connection", f"{type(exc).__name__}: {exc}"
            self.breaker.record(kind, self._scrub(f"{kind} ({detail})"))
            error = LLMError(
                self._scrub(
                    f"endpoint {self.name}: {kind} ({method} {path.split('?')[0]}: {detail}) after {attempt} attempt(s)"
                ),
                kind=kind,
                attempts=attempt,
                status_code=status,
                endpoint=self.name,
            )
            if kind not in RETRYABLE_KINDS or attempt > self._cfg.max_retries:
                raise error
            await asyncio.sleep(self._backoff(attempt, retry_after))


_KINDS = frozenset(
    {
        "rate_limited",
        "server_error",
        "timeout",
        "connection",
        "bad_response",
        "client_error",
        "endpoint_refused",
        "context_exceeded",
    }
)
