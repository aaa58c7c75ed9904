"""The OpenAI Batch API, served from memory: ``/v1/files`` for the JSONL input and the result files,
``/v1/batches`` for the jobs, and ``/admin/batches`` to expire open batches at once (tests).

Every line of a batch goes through the chat route's own path (``SimApp.complete``: parsing, the context
check, targeted faults, the fault plan, the engine, scripted replies, ``/admin/pause``) without the rate
limits, so its ``response.body`` is byte for byte what ``/v1/chat/completions`` answers for the same body
(apart from the completion's ``id`` and ``created``). Shapes follow OpenAI's API reference:

- output file line: ``{"id": "batch_req_...", "custom_id", "response": {"status_code": 200, "request_id":
  "req_...", "body": {chat completion}}, "error": null}``;
- error file line, a request answered with another status (400, 404, 429, 500; a ``drop``, ``hang`` or
  ``malformed`` fault is a 500 here): the same with that ``status_code`` and the route's error JSON as body;
- error file line of a request never run before the batch expired: ``{"id", "custom_id", "response": null,
  "error": {"code": "batch_expired", "message": ...}}``.

Lines are written in input order. A cancelled batch's unstarted (and interrupted) lines appear in neither
file. ``request_counts.completed`` counts output lines, ``failed`` error lines (expired ones included).
Line failures (``--batch-line-failure-rate``) are chosen by :func:`line_fails`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

from reasonmed.sim.http import Drop, Request, Response
from reasonmed.sim.metrics import SimMetrics
from reasonmed.sim.replies import error_reply, ok_reply
from reasonmed.sim.settings import SimSettings

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"  # the only endpoint the simulator batches
COMPLETION_WINDOW = "24h"  # the only window OpenAI accepts; its length here is --batch-window-s
MULTIPART_SLACK = 64 * 1024  # /v1/files accepts --batch-max-bytes plus this much multipart framing
MAX_REPORTED_ERRORS = 100  # validation errors listed on a failed batch
OPEN = ("validating", "in_progress")  # statuses a batch can be cancelled or expired from
TERMINAL = ("failed", "completed", "expired", "cancelled")
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."

# a line's body, and whether --batch-line-failure-rate picked it -> the chat path's reply
LineRunner = Callable[[bytes, bool], Awaitable[Response | Drop]]


def line_fails(seed: int, custom_id: str, rate: float) -> bool:
    """Whether ``--batch-line-failure-rate`` fails this line: ``sha256(f"{seed}|{custom_id}")``'s first
    8 bytes, big-endian, divided by 2**64, below ``rate``. Independent of order and of other lines."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"{seed}|{custom_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < rate


def _now() -> int:
    return int(time.time())


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    return error_reply(status, message, kind)


def _not_found(what: str, ident: str) -> Response:
    return _error(404, f"No such {what}: {ident!r} (this is the reasonmed simulator)", "not_found_error")


# --------------------------------------------------------------------------- files


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=_now)

    def as_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class BadUpload(ValueError):
    pass


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    data: bytes


def _header_message(raw: bytes) -> Message:
    return BytesHeaderParser().parsebytes(raw)


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a ``multipart/form-data`` body by field name (RFC 7578; the last of a name wins)."""
    ctype = _header_message(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1"))
    boundary = ctype.get_param("boundary")
    if ctype.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise BadUpload("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0:
        raise BadUpload("the multipart body has no boundary line")
    pos += len(delimiter)
    parts: dict[str, FormPart] = {}
    while not body.startswith(b"--", pos):  # "--boundary--" closes the body
        if not body.startswith(b"\r\n", pos):
            raise BadUpload("malformed multipart boundary line")
        pos += 2
        end = body.find(b"\r\n" + delimiter, pos)
        head_end = body.find(b"\r\n\r\n", pos - 2, end)
        if end < 0 or head_end < 0:
            raise BadUpload("unterminated multipart part")
        headers = _header_message(body[pos : head_end + 2] + b"\r\n")
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str):
            filename = headers.get_filename()
            parts[name] = FormPart(name, filename, body[head_end + 4 : end])
        pos = end + 2 + len(delimiter)
    return parts


def check_jsonl(data: bytes) -> None:
    """A batch input file must be UTF-8 JSON Lines: not empty, its first line a JSON object. Later lines
    are checked when a batch uses the file (a bad one fails that batch, with its line number)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadUpload("the file is not UTF-8 text (a batch input file is JSONL)") from None
    start = re.search(r"\S", text)  # the first line with text, without splitting a 200 MB file
    if start is None:
        raise BadUpload("the file is empty (a batch input file is JSONL: one request per line)")
    line_start = text.rfind("\n", 0, start.start()) + 1
    line_end = text.find("\n", start.start())
    first = text[line_start : line_end if line_end >= 0 else len(text)]
    try:
        value = json.loads(first)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BadUpload("the file is not JSONL: its first line is not a JSON object")


# --------------------------------------------------------------------------- validation of an input file


@dataclass(frozen=True)
class BatchLine:
    index: int  # among the batch's requests, from 0
    custom_id: str
    body: bytes


def _batch_error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _check_line(
    number: int, raw: str, endpoint: str, seen: set[str], model: list[str]
) -> tuple[BatchLine | None, dict[str, Any] | None]:
    """One input line (``number`` from 1): the request it holds, or the error that fails the batch."""
    try:
        item = json.loads(raw)
    except ValueError:
        return None, _batch_error("invalid_json_line", "This line is not parseable as valid JSON.", number)
    if not isinstance(item, dict):
        return None, _batch_error("invalid_json_line", "This line is not a JSON object.", number)
    custom_id, body = item.get("custom_id"), item.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        return None, _batch_error(
            "missing_required_parameter", "custom_id must be a non-empty string.", number, "custom_id"
        )
    if item.get("method") != "POST":
        return None, _batch_error("invalid_request", "method must be 'POST'.", number, "method")
    if item.get("url") != endpoint:
        message = f"The provided URL {item.get('url')!r} does not match the batch's endpoint {endpoint!r}."
        return None, _batch_error("url_mismatch", message, number, "url")
    if not isinstance(body, dict):
        return None, _batch_error("missing_required_parameter", "body must be a JSON object.", number, "body")
    if custom_id in seen:
        return None, _batch_error(
            "duplicate_custom_id",
            f"The custom_id {custom_id!r} appears more than once in the input file.",
            number,
            "custom_id",
        )
    seen.add(custom_id)
    if not model:
        model.append(str(body.get("model")))
    elif str(body.get("model")) != model[0]:
        message = f"The model {body.get('model')!r} differs from the batch's model {model[0]!r}."
        return None, _batch_error("model_mismatch", message, number, "body.model")
    return BatchLine(len(seen) - 1, custom_id, json.dumps(body).encode()), None


def validate_lines(
    data: bytes, endpoint: str, max_requests: int
) -> tuple[list[BatchLine], list[dict[str, Any]]]:
    """The requests of an input file, and the errors that fail its batch (none: it runs).

    Blank lines are skipped; line numbers count every line of the file from 1.
    """
    text = data.decode("utf-8", errors="replace")
    numbered = [(n, raw) for n, raw in enumerate(text.splitlines(), 1) if raw.strip()]
    errors: list[dict[str, Any]] = []
    if not numbered:
        errors.append(_batch_error("empty_file", "The batch input file is empty.", None))
    if len(numbered) > max_requests:
        message = f"The batch input file has {len(numbered)} requests; the limit is {max_requests}."
        errors.append(_batch_error("too_many_tasks", message, None))
    lines: list[BatchLine] = []
    seen: set[str] = set()
    model: list[str] = []
    for number, raw in numbered:
        line, error = _check_line(number, raw, endpoint, seen, model)
        if error is not None:
            errors.append(error)
        elif line is not None:
            lines.append(line)
    return lines, errors[:MAX_REPORTED_ERRORS]


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    data: bytes  # the input file's bytes when the batch was created
    created_at: int = field(default_factory=_now)
    expires_at: int = 0
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)  # "in_progress_at", "completed_at", ...
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    lines: list[BatchLine] = field(default_factory=list)
    records: dict[int, tuple[bool, bytes]] = field(default_factory=dict)  # index -> (output?, JSONL line)
    completed: int = 0
    failed: int = 0
    stopping: str | None = None  # "cancelled" or "expired" once asked for
    delay_s: float = (
        0.0  # how long it waits in_progress before its first line runs (the service's, at creation)
    )
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None

    def as_object(self) -> dict[str, Any]:
        stamp = self.times.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress_at"),
            "expires_at": self.expires_at,
            "finalizing_at": stamp("finalizing_at"),
            "completed_at": stamp("completed_at"),
            "failed_at": stamp("failed_at"),
            "expired_at": stamp("expired_at"),
            "cancelling_at": stamp("cancelling_at"),
            "cancelled_at": stamp("cancelled_at"),
            "request_counts": {
                "total": len(self.lines),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


def _record(custom_id: str, status: int, body: bytes) -> bytes:
    """One result line; ``body`` (JSON) is embedded as the route sent it, byte for byte."""
    head = json.dumps({"id": f"batch_req_{secrets.token_hex(16)}", "custom_id": custom_id})
    response = f'{{"status_code": {status}, "request_id": "req_{secrets.token_hex(16)}", "body": '
    return (head[:-1] + ', "response": ' + response).encode() + body + b'}, "error": null}\n'


def _result(line: BatchLine, reply: Response | Drop) -> tuple[bool, bytes]:
    """(goes to the output file?, its JSONL line) for a line's reply from the chat path."""
    if isinstance(reply, Drop):
        reply = _error(500, "simulated dropped connection (a batch line fails with 500)", "server_error")
    elif reply.status == 200:
        try:
            json.loads(reply.body)
        except ValueError:
            reply = _error(500, "simulated malformed reply (a batch line fails with 500)", "server_error")
    return reply.status == 200, _record(line.custom_id, reply.status, reply.body)


def _expired(line: BatchLine) -> bytes:
    record = {
        "id": f"batch_req_{secrets.token_hex(16)}",
        "custom_id": line.custom_id,
        "response": None,
        "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE},
    }
    return json.dumps(record).encode() + b"\n"


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    """OpenAI's metadata rules: at most 16 pairs, keys up to 64 characters, string values up to 512."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise ValueError("metadata must be an object of at most 16 key-value pairs")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise ValueError("metadata keys must be at most 64 characters, values strings of at most 512")
    return dict(value)


_ROUTES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"/v1/files"), ("GET", "POST")),
    (re.compile(r"/v1/files/([^/]+)"), ("GET", "DELETE")),
    (re.compile(r"/v1/files/([^/]+)/content"), ("GET",)),
    (re.compile(r"/v1/batches"), ("GET", "POST")),
    (re.compile(r"/v1/batches/([^/]+)"), ("GET",)),
    (re.compile(r"/v1/batches/([^/]+)/cancel"), ("POST",)),
    (re.compile(r"/admin/batches"), ("POST",)),
)


class BatchService:
    """Files and batches held in memory for the simulator's lifetime (nothing is written to disk)."""

    def __init__(self, settings: SimSettings, metrics: SimMetrics, run_line: LineRunner) -> None:
        self.settings = settings
        self.delay_s = settings.batch_delay_s  # /admin/batches {"delay_s": ...} changes it for new batches
        self.metrics = metrics
        self._run_line = run_line
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}  # in creation order

    def body_limits(self) -> dict[str, int]:
        return {"/v1/files": self.settings.batch_max_bytes + MULTIPART_SLACK}

    async def handle(self, req: Request) -> Response | None:
        """The reply of a Batch API route; None for a path that is none of them."""
        path = req.path.rstrip("/") or "/"
        for pattern, methods in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if req.method not in methods:
                return _error(405, f"method {req.method} not allowed on {req.path}")
            return await self._dispatch(req, pattern.pattern, *match.groups())
        return None

    async def _dispatch(self, req: Request, route: str, *ids: str) -> Response:
        key = (req.method, route)
        if key == ("POST", "/v1/files"):
            return self.upload(req)
        if key == ("GET", "/v1/files"):
            return self.list_files(req.query)
        if route.startswith("/v1/files/"):
            stored = self.files.get(ids[0])
            if stored is None:
                return _not_found("File", ids[0])
            if route.endswith("/content"):
                return Response(200, stored.data, content_type="application/octet-stream")
            if req.method == "DELETE":
                del self.files[stored.id]
                return ok_reply({"id": stored.id, "object": "file", "deleted": True})
            return ok_reply(stored.as_object())
        if key == ("POST", "/v1/batches"):
            return self.create(req.body)
        if key == ("GET", "/v1/batches"):
            return self.list_batches(req.query)
        if route == "/admin/batches":
            return await self.admin(req.body)
        batch = self.batches.get(ids[0])
        if batch is None:
            return _not_found("Batch", ids[0])
        if route.endswith("/cancel"):
            return self.cancel(batch)
        return ok_reply(batch.as_object())

    # ----------------------------------------------------------------- files

    def upload(self, req: Request) -> Response:
        try:
            parts = parse_multipart(req.headers.get("content-type", ""), req.body)
            purpose = parts.get("purpose")
            if purpose is None or purpose.data.decode("utf-8", errors="replace").strip() != "batch":
                raise BadUpload("purpose must be 'batch' (the simulator stores batch input files only)")
            part = parts.get("file")
            if part is None or part.filename is None:
                raise BadUpload("a 'file' part with a filename is required")
            if len(part.data) > self.settings.batch_max_bytes:
                raise BadUpload(
                    f"the file has {len(part.data)} bytes; the limit is {self.settings.batch_max_bytes} "
                    "(--batch-max-bytes)"
                )
            check_jsonl(part.data)
        except BadUpload as exc:
            return _error(400, str(exc))
        stored = self._store(part.filename or "input.jsonl", "batch", part.data)
        self.metrics.files_uploaded += 1
        self.metrics.file_bytes_uploaded += len(part.data)
        return ok_reply(stored.as_object())

    def _store(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(f"file-{secrets.token_hex(12)}", filename, purpose, data)
        self.files[stored.id] = stored
        return stored

    def list_files(self, query: dict[str, str]) -> Response:
        purpose = query.get("purpose")
        data = [f.as_object() for f in reversed(self.files.values()) if purpose in (None, f.purpose)]
        return ok_reply(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    # ----------------------------------------------------------------- batches

    def create(self, body: bytes) -> Response:
        try:
            request = _parse_json_object(body)
            file_id = request.get("input_file_id")
            if not isinstance(file_id, str):
                raise ValueError("input_file_id is required")
            if request.get("endpoint") != ENDPOINT:
                raise ValueError(f"endpoint must be {ENDPOINT!r} (the only one the simulator batches)")
            if request.get("completion_window") != COMPLETION_WINDOW:
                raise ValueError(f"completion_window must be {COMPLETION_WINDOW!r}")
            metadata = _metadata(request.get("metadata"))
        except ValueError as exc:
            return _error(400, str(exc))
        stored = self.files.get(file_id)
        if stored is None:
            return _not_found("File", file_id)
        if stored.purpose != "batch":
            return _error(400, f"file {file_id} has purpose {stored.purpose!r}, not 'batch'")
        batch = Batch(
            f"batch_{secrets.token_hex(16)}", file_id, ENDPOINT, COMPLETION_WINDOW, metadata, stored.data
        )
        batch.expires_at = batch.created_at + round(self.settings.batch_window_s)
        batch.delay_s = self.delay_s
        self.batches[batch.id] = batch
        self.metrics.batches_created += 1
        self.metrics.batch_statuses["validating"] += 1
        loop = asyncio.get_running_loop()
        batch.task = loop.create_task(self._run(batch))
        batch.task.add_done_callback(lambda _task: self._settle(batch, None))
        batch.timer = loop.call_later(self.settings.batch_window_s, self._stop, batch, "expired")
        return ok_reply(batch.as_object())

    def list_batches(self, query: dict[str, str]) -> Response:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return _error(400, "limit must be an integer between 1 and 100")
        newest_first = list(reversed(self.batches.values()))
        after = query.get("after")
        if after is not None:
            ids = [b.id for b in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = [b.as_object() for b in newest_first[:limit]]
        return ok_reply(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(newest_first) > limit,
            }
        )

    def cancel(self, batch: Batch) -> Response:
        if batch.status in OPEN:
            self._stop(batch, "cancelled")
        elif batch.status != "cancelling":
            return _error(409, f"Cannot cancel a batch with status {batch.status!r}.")
        return ok_reply(batch.as_object())

    async def admin(self, body: bytes) -> Response:
        """``{"expire": "<batch id>"}`` or ``{"expire": "all"}``: the window of open batches ends now; the
        reply comes once they are expired (their result files written). ``{"delay_s": SECONDS}``: batches
        created from now on wait that long before their first line runs (a test holds a batch open with a
        long delay, expires it, then lets the next ones through)."""
        try:
            request = _parse_json_object(body)
        except ValueError as exc:
            return _error(400, f"admin/batches: {exc}")
        if "delay_s" in request:
            delay = request["delay_s"]
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                return _error(400, "admin/batches: delay_s must be a number of seconds >= 0")
            self.delay_s = float(delay)
            return ok_reply({"delay_s": self.delay_s})
        target = request.get("expire")
        if not isinstance(target, str):
            return _error(400, 'admin/batches: expected {"expire": "<batch id>" | "all"}')
        if target == "all":
            chosen = [b for b in self.batches.values() if b.status in OPEN]
        elif target not in self.batches:
            return _not_found("Batch", target)
        elif self.batches[target].status not in OPEN:
            return _error(409, f"batch {target} is {self.batches[target].status}, not open")
        else:
            chosen = [self.batches[target]]
        for batch in chosen:
            self._stop(batch, "expired")
        tasks = [b.task for b in chosen if b.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        for batch in chosen:
            self._settle(batch, None)
        return ok_reply({"expired": [b.id for b in chosen]})

    # ----------------------------------------------------------------- processing

    def _enter(self, batch: Batch, status: str) -> None:
        batch.status = status
        if status != "validating":
            batch.times[f"{status}_at"] = _now()
        self.metrics.batch_statuses[status] += 1

    def _stop(self, batch: Batch, how: str) -> None:
        """Cancel (``"cancelled"``) or expire (``"expired"``) an open batch: its task ends, and then it
        settles with the lines done so far."""
        if batch.status not in OPEN or batch.stopping is not None:
            return
        batch.stopping = how
        if how == "cancelled":
            self._enter(batch, "cancelling")
        if batch.task is not None:
            batch.task.cancel()

    async def _run(self, batch: Batch) -> None:
        try:
            lines, errors = await asyncio.to_thread(
                validate_lines, batch.data, batch.endpoint, self.settings.batch_max_requests
            )
            batch.data = b""  # the input file keeps its own copy
            if errors:
                batch.errors = errors
                self._finish(batch, "failed")
                return
            batch.lines = lines
            self._enter(batch, "in_progress")
            if batch.delay_s > 0:
                await asyncio.sleep(batch.delay_s)
            queue = iter(lines)
            workers = min(self.settings.batch_concurrency, len(lines))
            await asyncio.gather(*(self._worker(batch, queue) for _ in range(workers)))
        except asyncio.CancelledError:
            self._settle(batch, None)
            raise
        except Exception:
            log.exception("batch %s failed in the simulator", batch.id)
            batch.errors = [_batch_error("server_error", "The simulator failed to process the batch.", None)]
            self._finish(batch, "failed")
            return
        self._settle(batch, "completed")

    async def _worker(self, batch: Batch, queue: Iterator[BatchLine]) -> None:
        seed, rate = self.settings.fault_seed, self.settings.batch_line_failure_rate
        for line in queue:
            reply = await self._run_line(line.body, line_fails(seed, line.custom_id, rate))
            ok, record = _result(line, reply)
            batch.records[line.index] = (ok, record)
            if ok:
                batch.completed += 1
            else:
                batch.failed += 1

    def _settle(self, batch: Batch, outcome: str | None) -> None:
        """Write the result files and end ``batch`` as ``outcome``, or as asked (cancelled, expired);
        nothing if it has ended already or nothing ends it (the server is shutting down)."""
        final = batch.stopping or outcome
        if batch.status in TERMINAL or final is None:
            return
        records = dict(batch.records)
        if final == "expired":
            unfinished = [line for line in batch.lines if line.index not in records]
            for line in unfinished:
                records[line.index] = (False, _expired(line))
            batch.failed += len(unfinished)
            self.metrics.batch_lines_expired += len(unfinished)
        if final == "completed":
            self._enter(batch, "finalizing")
        ordered = [records[i] for i in sorted(records)]
        output = b"".join(record for ok, record in ordered if ok)
        errors = b"".join(record for ok, record in ordered if not ok)
        if output:
            batch.output_file_id = self._store(f"{batch.id}_output.jsonl", "batch_output", output).id
        if errors:
            batch.error_file_id = self._store(f"{batch.id}_error.jsonl", "batch_output", errors).id
        self._finish(batch, final)

    def _finish(self, batch: Batch, status: str) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        self._enter(batch, status)

    def close(self) -> None:
        for batch in self.batches.values():
            if batch.timer is not None:
                batch.timer.cancel()
            if batch.task is not None and not batch.task.done():
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    batch.task.cancel()
