"""A small HTTP/1.1 server on raw asyncio transports, with h11 doing the protocol.

Why not uvicorn + starlette: the simulator must be able to *drop* a connection without a response and
notice a client hanging up mid-request, and it must not be the bottleneck of the benchmarks. Owning
the transport gives both; h11 (the parser uvicorn itself can use) keeps the HTTP handling correct.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl

import h11

log = logging.getLogger(__name__)

MAX_BODY_BYTES = (
    16 * 1024 * 1024
)  # per request; ``serve(body_limits=...)`` sets other limits for chosen paths


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; the simulator only ever checks presence, never logs values
    body: bytes
    # the query string's parameters (the last of a repeated name wins); ``path`` never holds the query
    query: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)


class Drop:
    """Returned by a handler to close the connection without sending anything."""


DROP = Drop()
Handler = Callable[[Request], Awaitable[Response | Drop]]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: requests are handled one at a time, in order (no pipelining needed)."""

    def __init__(
        self,
        handler: Handler,
        server_headers: Sequence[tuple[bytes, bytes]],
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self._handler = handler
        self._server_headers = list(server_headers)
        self._body_limits = dict(body_limits or {})
        self._body_limit = MAX_BODY_BYTES
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._body_size = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        if self._task is None:
            self._pump()

    def eof_received(self) -> bool:
        # Like uvicorn: a client that closes its side has given up on the request; closing ours
        # leads to connection_lost, which cancels the work in progress (a hang ends here).
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: stop working on its request (vLLM aborts too)

    # -- request cycle

    def _pump(self) -> None:
        while self._transport is not None:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body, self._body_size = event, [], 0
                path = _split_target(event.target)[0]
                self._body_limit = self._body_limits.get(path.rstrip("/") or "/", MAX_BODY_BYTES)
                if self._h11.they_are_waiting_for_100_continue:  # curl does this for bodies over 1 KiB
                    self._transport.write(
                        self._h11.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
            elif isinstance(event, h11.Data):
                self._body_size += len(event.data)
                if self._body_size > self._body_limit:
                    self._fail(413, "request body too large")
                    return
                self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                req = self._request
                path, query = _split_target(req.target)
                request = Request(
                    method=req.method.decode("ascii"),
                    path=path,
                    headers={k.decode("latin-1"): v.decode("latin-1") for k, v in req.headers},
                    body=b"".join(self._body),
                    query=dict(parse_qsl(query, keep_blank_values=True)),
                )
                self._request, self._body = None, []
                self._task = asyncio.get_running_loop().create_task(self._serve(request))
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    async def _serve(self, request: Request) -> None:
        try:
            try:
                result = await self._handler(request)
            except asyncio.CancelledError:
                return
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                result = Response(500, b'{"error": {"message": "simulator handler failed", "code": 500}}')
            if isinstance(result, Drop):
                self._abort()
                return
            self._send(result)
        finally:
            self._task = None
        if self._transport is None:
            return
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._pump()
        else:
            self._close()

    def _send(self, response: Response) -> None:
        if self._transport is None:
            return
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *self._server_headers,
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
        ]
        try:
            data = self._h11.send(
                h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))
            )
            data += self._h11.send(h11.Data(data=response.body)) if response.body else b""
            data += self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._abort()
            return
        self._transport.write(data)

    def _fail(self, status: int, message: str) -> None:
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = json.dumps({"error": {"message": message, "code": status}}).encode()
            self._send(Response(status, body))
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _abort(self) -> None:
        """Close without a response: the client sees the connection end with nothing sent."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _split_target(target: bytes) -> tuple[str, str]:
    """``b"/v1/batches?limit=2"`` -> ``("/v1/batches", "limit=2")``."""
    path, _, query = target.decode("latin-1").partition("?")
    return path, query


@functools.cache
def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def serve(
    handler: Handler,
    host: str,
    port: int,
    *,
    server_headers: Sequence[tuple[str, str]] = (),
    backlog: int = 4096,
    body_limits: Mapping[str, int] | None = None,
) -> asyncio.Server:
    """Start listening; the caller owns the returned server (``async with server`` / ``close()``).

    ``body_limits`` maps paths (no trailing slash) to their largest accepted body in bytes; other paths
    accept ``MAX_BODY_BYTES``. A larger body is answered 413 and its connection closed.
    """
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in server_headers]
    limits = dict(body_limits or {})
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Connection(handler, encoded, limits), host, port, backlog=backlog, reuse_address=True
    )
