"""The LLM client against a hostile server over real HTTP (an aiohttp server in the test's loop): it
never follows a redirect with the prompt, never reads a body past its cap, cuts server strings to the
columns that store them, and repeats no credential a server echoes back in an error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from reasonmed.config import EndpointConfig
from reasonmed.llm import LLMError
from reasonmed.llm.openai_backend import OpenAICompatibleBackend
from reasonmed.llm.types import FINISH_REASON_CHARS, MODEL_CHARS, REQUEST_ID_CHARS

PROMPT = [{"role": "user", "content": "Patient: 54-year-old, HbA1c 9.1%. Which drug first?"}]


def completion(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "model": "m",
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
        "choices": [{"index": 0, "message": {"content": "Answer: A"}, "finish_reason": "stop"}],
    }
    body.update(overrides)
    return body


class Hostile:
    """One server with a route per behaviour; ``hits`` counts requests per path, ``bodies`` keeps what arrived."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.bodies: dict[str, list[bytes]] = {}
        self.app = web.Application()
        self.app.router.add_post("/{name}/v1/chat/completions", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        self.bodies.setdefault(name, []).append(await request.read())
        if name.startswith("redirect"):
            code = int(name.removeprefix("redirect"))
            raise {
                307: web.HTTPTemporaryRedirect,
                308: web.HTTPPermanentRedirect,
                301: web.HTTPMovedPermanently,
                302: web.HTTPFound,
            }[code](location="http://collector.invalid/steal/v1/chat/completions?k=1")
        if name == "huge_declared":  # says how big it is
            return web.Response(body=b"x" * (3 << 20), content_type="application/json")
        if name == "huge_chunked":  # streams without a length, never ending soon
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(64):
                await resp.write(b" " * (64 << 10))
            await resp.write_eof()
            return resp
        if name == "long_strings":
            return web.json_response(
                completion(
                    id="id-" + "i" * 5000,
                    model="model-" + "m" * 5000,
                    choices=[{"index": 0, "message": {"content": "Answer: A"}, "finish_reason": "f" * 5000}],
                )
            )
        if name == "echo":  # a 500 that repeats the request's headers, as a debugging proxy might
            lines = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
            return web.Response(status=500, text=f"{json.dumps({'headers': dict(request.headers)})}\n{lines}")
        if name == "deep":  # a 200 whose JSON nests deeper than the parser's recursion allows
            return web.Response(body=b"[" * 200_000, content_type="application/json")
        if name == "collector":
            return web.json_response(completion())
        return web.json_response(completion())


@pytest_asyncio.fixture(loop_scope="function")  # served from the loop the test runs in
async def hostile() -> AsyncIterator[tuple[Hostile, Callable[..., OpenAICompatibleBackend]]]:
    h = Hostile()
    server = TestServer(h.app, host="127.0.0.1")
    await server.start_server()
    made: list[OpenAICompatibleBackend] = []

    def backend(
        name: str, userinfo: str = "", key: str | None = "sk-canary-key", **cfg: Any
    ) -> OpenAICompatibleBackend:
        options = {
            "base_url": f"http://{userinfo}127.0.0.1:{server.port}/{name}/v1",
            "model": "m",
            "max_retries": 2,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "timeout_s": 5.0,
            **cfg,
        }
        b = OpenAICompatibleBackend(name, EndpointConfig(**options), key)
        made.append(b)
        return b

    try:
        yield h, backend
    finally:
        for b in made:
            await b.aclose()
        await server.close()


@pytest.mark.parametrize("code", [307, 308, 301, 302])
async def test_a_redirect_is_refused_not_followed(code: int, hostile: tuple[Hostile, Any]) -> None:
    h, backend = hostile
    b = backend(f"redirect{code}")
    with pytest.raises(LLMError) as info:
        await b.complete(PROMPT, temperature=0.0, max_tokens=8)
    err = info.value
    assert err.kind == "endpoint_refused" and not err.retryable and err.attempts == 1
    assert f"HTTP {code} redirect to http://collector.invalid not followed; set base_url" in str(err)
    assert "steal" not in str(err) and "k=1" not in str(err)  # only the origin is repeated
    assert h.hits == {f"redirect{code}": 1}  # sent once, to its own origin only
    assert json.loads(h.bodies[f"redirect{code}"][0])["messages"] == PROMPT


@pytest.mark.parametrize("route", ["huge_declared", "huge_chunked"])
async def test_a_body_over_the_cap_is_refused_unread(route: str, hostile: tuple[Hostile, Any]) -> None:
    h, backend = hostile
    b = backend(route, max_response_bytes=1 << 20, max_retries=1)
    with pytest.raises(LLMError) as info:
        await b.complete(PROMPT, temperature=0.0, max_tokens=8)
    assert (
        info.value.kind == "bad_response" and info.value.attempts == 2
    )  # retried within its budget, then final
    assert "exceeds max_response_bytes (1,048,576)" in str(info.value)
    assert h.hits[route] == 2


async def test_a_body_nested_too_deep_is_a_bad_response_not_a_traceback(hostile: tuple[Hostile, Any]) -> None:
    h, backend = hostile
    with pytest.raises(LLMError) as info:
        await backend("deep", max_retries=1).complete(PROMPT, temperature=0.0, max_tokens=8)
    assert info.value.kind == "bad_response" and "body is not JSON (RecursionError)" in str(info.value)
    assert h.hits["deep"] == 2  # retried within its budget


async def test_a_body_under_the_cap_is_read(hostile: tuple[Hostile, Any]) -> None:
    _h, backend = hostile
    [c] = await backend("fine", max_response_bytes=4096).complete(PROMPT, temperature=0.0, max_tokens=8)
    assert c.text == "Answer: A" and c.finish_reason == "stop"


async def test_server_strings_are_cut_to_their_columns(hostile: tuple[Hostile, Any]) -> None:
    from reasonmed.db.models import EvalPrediction, LLMCall

    _h, backend = hostile
    [c] = await backend("long_strings").complete(PROMPT, temperature=0.0, max_tokens=8)
    assert c.request_id == ("id-" + "i" * 5000)[:REQUEST_ID_CHARS]
    assert c.model == ("model-" + "m" * 5000)[:MODEL_CHARS]
    assert c.finish_reason == "f" * FINISH_REASON_CHARS
    # the limits are the columns' own widths
    for table in (LLMCall, EvalPrediction):
        cols = table.__table__.c
        assert cols.finish_reason.type.length == FINISH_REASON_CHARS
        assert cols.request_id.type.length == REQUEST_ID_CHARS
    assert LLMCall.__table__.c.model.type.length == MODEL_CHARS


@pytest.mark.parametrize("credentials", ["basic", "bearer"])
async def test_an_echoed_authorization_header_is_not_repeated(
    credentials: str, hostile: tuple[Hostile, Any]
) -> None:
    """The error message (stored in llm_calls.error and question_failures) holds neither the password, nor
    the Basic credential made of it, nor the API key, in any form the server echoes them."""
    import base64

    from reasonmed.pipeline.failures import classify

    _h, backend = hostile
    password = "canaryECHOpw3d1"
    if credentials == "basic":
        b = backend("echo", userinfo=f"echo:{password}@", key=None, max_retries=1)
        secrets = [password, base64.b64encode(f"echo:{password}".encode()).decode()]
    else:
        b = backend("echo", key=password, max_retries=1)
        secrets = [password]
    with pytest.raises(LLMError) as info:
        await b.complete(PROMPT, temperature=0.0, max_tokens=8)
    err = info.value
    assert err.kind == "server_error" and "HTTP 500" in str(err)
    assert '"Authorization": "***"' in str(err)
    stored = str(err) + classify("generate", err).message + repr(b) + repr(err)
    assert [s for s in secrets if s in stored] == []
