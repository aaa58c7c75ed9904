"""The batch backend against the simulator's Batch API over HTTP, on Postgres and SQLite: a batch whose
creation was never recorded is found again, one that never reached the API gives its requests back, and the
API's limits split a run's requests into several batches (llm/batch.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from reasonmed.db import batch_repo
from reasonmed.llm.batch import SUBMISSION_KEY, BatchBackend
from reasonmed.llm.types import LLMError
from reasonmed.sim.launcher import SimServer
from tests.fixtures_sim import sim_endpoint

DEAD = "gone-host:1"


def _backend(engine: Engine, sim: SimServer, **overrides: Any) -> BatchBackend:
    return BatchBackend(
        "hosted", sim_endpoint(sim, "sim/summarizer", mode="batch", **overrides), engine=engine
    )


def _ask(backend: BatchBackend, text_: str, seed: int = 7) -> Any:
    messages = [{"role": "user", "content": text_}]
    return backend.complete(messages, temperature=0.0, max_tokens=64, seed=seed)


async def _pending(backend: BatchBackend, text_: str, seed: int = 7) -> None:
    with pytest.raises(LLMError) as info:
        await _ask(backend, text_, seed)
    assert info.value.kind == "batch_pending"


async def _collect_until_done(
    backend: BatchBackend, is_dead: Callable[[str], bool] = lambda _w: False
) -> None:
    for _ in range(100):
        await backend.collect(is_dead)
        if not batch_repo.count_open(backend._engine):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the batch never finished")


def _taken_by_a_worker_that_dies(backend: BatchBackend) -> tuple[int, str, list[Any]]:
    """The backend's queued requests, recorded as a batch by a worker that then dies (nothing uploaded)."""
    queued = list(backend._queue.values())
    backend._queue.clear()
    started = batch_repo.start_batch(
        backend._engine, endpoint="hosted", model="sim/summarizer", worker=DEAD, run_id=None, queued=queued
    )
    assert started is not None
    return started


def _count(engine: Engine, sql: str) -> Any:
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


def test_a_batch_created_but_not_recorded_is_found_by_its_submission_key(
    engine: Engine, sim_factory: Callable[..., SimServer]
) -> None:
    sim = sim_factory()

    async def go() -> None:
        backend = _backend(engine, sim)
        try:
            await _pending(backend, "Summarise: aspirin inhibits COX.")
            # A worker takes the request, uploads and creates the batch, and dies before recording it.
            _, key, mine = _taken_by_a_worker_that_dies(backend)
            file_id = await backend._upload(b"".join(q.line for q in mine), "lost.jsonl")
            await backend._api_json(
                "POST",
                "/batches",
                {
                    "input_file_id": file_id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                    "metadata": {SUBMISSION_KEY: key},
                },
            )
            assert _count(engine, "select status from llm_batches") == "preparing"
            # Still being prepared for all anyone can tell: left alone while its worker may be alive.
            assert (await backend.collect()).still_open == 1
            await _collect_until_done(backend, is_dead=lambda w: w == DEAD)
            got = await _ask(backend, "Summarise: aspirin inhibits COX.")
            assert len(got) == 1 and got[0].text and got[0].batch_id is not None
        finally:
            await backend.aclose()

    asyncio.run(go())
    assert sim.metrics()["batches_created_total"] == 1  # found, not sent again
    assert _count(engine, "select count(*) from batch_requests") == 1


def test_a_batch_that_never_reached_the_api_gives_its_requests_back(
    engine: Engine, sim_factory: Callable[..., SimServer]
) -> None:
    sim = sim_factory()

    async def go() -> None:
        backend = _backend(engine, sim)
        try:
            await _pending(backend, "Summarise: metformin lowers glucose.")
            _taken_by_a_worker_that_dies(backend)
            await backend.collect(is_dead=lambda w: w == DEAD)  # not found at the API: abandoned
            assert _count(engine, "select status from llm_batches") == "abandoned"
            assert _count(engine, "select count(*) from batch_requests") == 0
            await _pending(backend, "Summarise: metformin lowers glucose.")  # asked again: queued again
            assert await backend.submit(worker="live:1", run_id=None)
            await _collect_until_done(backend)
            assert await _ask(backend, "Summarise: metformin lowers glucose.")
        finally:
            await backend.aclose()

    asyncio.run(go())
    assert sim.metrics()["batches_created_total"] == 1
    assert (
        _count(engine, "select count(*) from batch_requests where attempt = 1 and status = 'completed'") == 1
    )


def test_the_apis_limits_split_a_runs_requests_and_a_request_no_file_can_carry_fails(
    engine: Engine, sim_factory: Callable[..., SimServer]
) -> None:
    sim = sim_factory()

    async def go() -> None:
        backend = _backend(engine, sim, batch_max_requests=2, batch_max_bytes=2048)
        try:
            for i in range(5):
                await _pending(backend, f"Summarise case {i}.", seed=i)
            await _pending(backend, "Summarise: " + "very long text " * 200, seed=99)  # > 2 KiB as a line
            assert len(await backend.submit(worker="live:1", run_id=None)) == 3  # 2 + 2 + 1
            await _collect_until_done(backend)
            for i in range(5):
                assert await _ask(backend, f"Summarise case {i}.", seed=i)
            with pytest.raises(LLMError) as info:
                await _ask(backend, "Summarise: " + "very long text " * 200, seed=99)
            assert info.value.kind == "client_error" and "batch_max_bytes" in str(info.value)
        finally:
            await backend.aclose()

    asyncio.run(go())
    assert sim.metrics()["batches_created_total"] == 3
    assert _count(engine, "select sum(requests) from llm_batches") == 5


def test_a_server_echoing_the_key_in_an_error_line_stores_it_masked(engine: Engine) -> None:
    """A hostile Batch API whose error file repeats the request's Authorization header."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from reasonmed.config import EndpointConfig
    from reasonmed.db.batch_repo import Queued

    key = "sk-canary-0123456789abcdef"
    line = {
        "id": "batch_req_1",
        "custom_id": "rm-x",
        "response": {"status_code": 401, "body": {"error": {"message": f"bad key: Bearer {key}"}}},
        "error": None,
    }

    async def batch(_: web.Request) -> web.Response:
        return web.json_response(
            {"id": "b1", "status": "completed", "output_file_id": None, "error_file_id": "f1"}
        )

    async def content(_: web.Request) -> web.Response:
        return web.Response(body=(json.dumps(line) + "\n").encode())

    async def go() -> None:
        app = web.Application()
        app.router.add_get("/v1/batches/b1", batch)
        app.router.add_get("/v1/files/f1/content", content)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        cfg = EndpointConfig(base_url=str(server.make_url("/v1")), model="m", mode="batch", max_retries=0)
        backend = BatchBackend("hosted", cfg, key, engine=engine)
        try:
            started = batch_repo.start_batch(
                engine,
                endpoint="hosted",
                model="m",
                worker="w",
                run_id=None,
                queued=[Queued("rm-x", 1, b"{}\n")],
            )
            assert started is not None
            batch_repo.mark_submitted(
                engine, started[0], remote_id="b1", input_file_id="f0", status="validating"
            )
            got = await backend.collect()
            assert got.stored == 1 and got.failed_requests == 1
        finally:
            await backend.aclose()
            await server.close()

    asyncio.run(go())
    stored = _count(engine, "select error from batch_requests")
    assert stored and "bad key" in stored and key not in stored
    assert _count(engine, "select error_kind from batch_requests") == "endpoint_refused"


def test_a_cancelled_batch_fails_its_unanswered_requests_once_and_they_go_out_again(
    engine: Engine, sim_factory: Callable[..., SimServer]
) -> None:
    import httpx

    sim = sim_factory(batch_delay_s=30.0)  # still in progress when it is cancelled

    async def go() -> None:
        backend = _backend(engine, sim)
        try:
            await _pending(backend, "Summarise: warfarin needs INR checks.")
            assert await backend.submit(worker="live:1", run_id=None)
            remote = _count(engine, "select remote_id from llm_batches")
            httpx.post(f"{sim.base_url}/batches/{remote}/cancel", timeout=10).raise_for_status()
            await _collect_until_done(backend)
            assert _count(engine, "select status from llm_batches") == "cancelled"
            with pytest.raises(LLMError) as info:  # handed to its question once, as a failed request
                await _ask(backend, "Summarise: warfarin needs INR checks.")
            assert info.value.kind == "server_error" and "cancelled" in str(info.value)
            await _pending(backend, "Summarise: warfarin needs INR checks.")  # the next ask: attempt 2
            assert [q.attempt for q in backend._queue.values()] == [2]
        finally:
            await backend.aclose()

    asyncio.run(go())
    assert _count(engine, "select count(*) from batch_requests where error_kind = 'server_error'") == 1
