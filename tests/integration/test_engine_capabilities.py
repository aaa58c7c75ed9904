"""Engines differ: some sample one choice per request, some have no /models route, the simulator serves only
simulated model names. Each difference is handled the same way everywhere, over real HTTP: the preflight
names the problem before any question is claimed, and the client turns a capability mismatch into one
final, explained error instead of retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner

from reasonmed.cli import app as cli_app
from reasonmed.config import EndpointConfig
from reasonmed.llm.llamacpp_server import LlamaCppServer
from reasonmed.llm.openai_backend import OpenAICompatibleBackend
from reasonmed.llm.preflight import check_endpoints
from reasonmed.llm.types import LLMError
from reasonmed.sim.launcher import SimServer
from tests.fixtures_llamacpp import write_llamacpp_config
from tests.fixtures_sim import sim_endpoint

MESSAGES = [{"role": "user", "content": "Is aspirin an antiplatelet drug? Answer yes or no."}]


def _endpoint(base_url: str, model: str, **kw: object) -> EndpointConfig:
    return EndpointConfig(
        base_url=base_url, model=model, timeout_s=120, max_retries=3, backoff_base_s=0.01, **kw
    )


async def test_preflight_on_a_server_without_a_models_route_checks_reachability_only(
    unused_tcp_port: int,
) -> None:
    async def chat(_: web.Request) -> web.Response:
        return web.json_response({"choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        ep = _endpoint(f"http://127.0.0.1:{unused_tcp_port}/v1", "any/model")
        (check,) = await check_endpoints({"bare": ep}, {})
    finally:
        await runner.cleanup()
    assert check.ok and "no /models route" in check.detail


async def test_the_simulator_serves_only_simulated_model_names(sim: SimServer) -> None:
    real_name = _endpoint(sim.base_url, "Qwen/Qwen2.5-72B-Instruct")
    (check,) = await check_endpoints({"looks-real": real_name}, {})
    assert not check.ok and "simulator" in check.detail and "sim/" in check.detail
    backend = OpenAICompatibleBackend("looks-real", real_name)
    try:
        with pytest.raises(LLMError) as err:
            await backend.complete(MESSAGES, temperature=0.0, max_tokens=8)
    finally:
        await backend.aclose()
    assert err.value.kind == "endpoint_refused" and err.value.status_code == 404 and err.value.attempts == 1
    (ok,) = await check_endpoints({"sim": sim_endpoint(sim)}, {})
    assert ok.ok


@pytest.mark.real_engine
@pytest.mark.slow
async def test_an_engine_that_ignores_n_gets_one_request_per_choice(llamacpp: LlamaCppServer) -> None:
    """llama.cpp answers one choice whatever ``n`` says. Declared (supports_n: false), the client sends one
    request per choice, seeded seed + i; undeclared, the first answer is a final, explained error."""
    fan_out = OpenAICompatibleBackend("local", _endpoint(llamacpp.base_url, llamacpp.alias, supports_n=False))
    naive = OpenAICompatibleBackend("local", _endpoint(llamacpp.base_url, llamacpp.alias, supports_n=True))
    try:
        before = sum(llamacpp.requests_served().values())
        got = await fan_out.complete(MESSAGES, temperature=0.9, max_tokens=12, n=3, seed=7)
        assert [c.index for c in got] == [0, 1, 2]
        assert sum(llamacpp.requests_served().values()) - before == 3
        # The engine honours the seed: choice 1 is what a single request with seed 8 gives.
        (again,) = await fan_out.complete(MESSAGES, temperature=0.9, max_tokens=12, n=1, seed=8)
        assert again.text == got[1].text
        before = sum(llamacpp.requests_served().values())
        with pytest.raises(LLMError) as err:
            await naive.complete(MESSAGES, temperature=0.9, max_tokens=12, n=3, seed=7)
        assert err.value.kind == "endpoint_refused" and "supports_n: false" in str(err.value)
        assert sum(llamacpp.requests_served().values()) - before == 1  # not retried
    finally:
        await fan_out.aclose()
        await naive.aclose()


@pytest.mark.real_engine
@pytest.mark.slow
async def test_preflight_names_the_model_a_real_engine_serves(llamacpp: LlamaCppServer) -> None:
    good = _endpoint(llamacpp.base_url, llamacpp.alias)
    wrong = _endpoint(llamacpp.base_url, "Qwen/Qwen2.5-72B-Instruct")
    checks = await check_endpoints({"local": good, "typo": wrong}, {})
    assert checks[0].ok and llamacpp.alias in checks[0].detail
    assert not checks[1].ok and f"serves {llamacpp.alias}, not Qwen/Qwen2.5-72B-Instruct" in checks[1].detail


async def test_preflight_reads_llama_servers_context_from_props(unused_tcp_port: int) -> None:
    """llama.cpp's own server lists model ids only on /v1/models and its context on /props (per slot)."""

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "local-model", "object": "model"}]})

    async def props(_: web.Request) -> web.Response:
        return web.json_response({"default_generation_settings": {"n_ctx": 8192}, "total_slots": 1})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/props", props)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        url = f"http://127.0.0.1:{unused_tcp_port}/v1"
        (check,) = await check_endpoints({"llama": _endpoint(url, "local-model", context_tokens=16384)}, {})
    finally:
        await runner.cleanup()
    assert check.ok and (check.context.reported, check.context.tokens) == (8192, 8192)
    assert "the server reports 8,192, context_tokens says 16,384; the smaller is used" in check.line()


@pytest.mark.real_engine
@pytest.mark.slow
def test_config_check_ping_reports_the_llamacpp_context(llamacpp: LlamaCppServer, tmp_path: Path) -> None:
    """llama-cpp-python's server reports its --n_ctx nowhere (0.3.x), so the llama.cpp profile declares it
    (context_tokens) and the ping says where the context it reports comes from; nothing is generated."""
    config = write_llamacpp_config(tmp_path / "pipeline.yaml", llamacpp)
    before = sum(llamacpp.requests_served().values())
    result = CliRunner().invoke(cli_app, ["config", "check", "--config", str(config), "--ping"])
    assert result.exit_code == 0, result.output
    assert llamacpp.n_ctx == 4096
    assert "endpoint local (" in result.output
    assert "context 4,096 tokens (context_tokens; the server reports none)" in result.output
    assert "budgets: every role's largest request fits its endpoint's context" in result.output
    assert sum(llamacpp.requests_served().values()) == before


async def test_a_reasoning_model_gets_its_budget_as_max_completion_tokens_and_no_sampler(
    unused_tcp_port: int,
) -> None:
    """o1-class endpoints refuse temperature/top_p and count their budget in max_completion_tokens."""
    seen: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(
            {"id": "x", "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    url = f"http://127.0.0.1:{unused_tcp_port}/v1"
    reasoning = OpenAICompatibleBackend("o1", _endpoint(url, "o1-mini", reasoning_model=True))
    plain = OpenAICompatibleBackend("gpt", _endpoint(url, "gpt-4o"))
    try:
        await reasoning.complete(MESSAGES, temperature=0.7, max_tokens=20000, top_p=0.9, seed=3)
        await plain.complete(MESSAGES, temperature=0.7, max_tokens=100, top_p=0.9)
    finally:
        await reasoning.aclose()
        await plain.aclose()
        await runner.cleanup()
    assert seen[0]["max_completion_tokens"] == 20000 and seen[0]["seed"] == 3
    assert not {"temperature", "top_p", "max_tokens"} & set(seen[0])
    assert (seen[1]["temperature"], seen[1]["top_p"], seen[1]["max_tokens"]) == (0.7, 0.9, 100)
