"""The OpenAI-compatible backend over real HTTP against the simulator in its own process.

Each fault the simulator can inject is either retried or returned, as the backend promises; the
per-endpoint cap holds under load; secrets never reach the logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from reasonmed.config import ConfigError, parse_pipeline_config
from reasonmed.llm import LLMError, LLMRegistry
from reasonmed.llm.openai_backend import OpenAICompatibleBackend, parse_retry_after
from reasonmed.llm.registry import resolve_api_key
from reasonmed.llm.types import ChatBackend
from reasonmed.llm.usage import UsageTracker
from reasonmed.parsing import extract_answer
from reasonmed.prompts import context_block, format_options, get_template
from tests.fixtures_sim import sim_endpoint

OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}
QUESTION = (
    "A 65-year-old man presents with crushing chest pain for 2 hours. Which drug should be given first?"
)
MESSAGES = get_template("generate").render(
    question=QUESTION, context_block=context_block(None), options=format_options(OPTIONS)
)


def backend(server, **overrides) -> OpenAICompatibleBackend:  # type: ignore[no-untyped-def]
    api_key = overrides.pop("api_key", None)
    usage = overrides.pop("usage", None)
    return OpenAICompatibleBackend("sim", sim_endpoint(server, **overrides), api_key, usage=usage)


async def ask(b: OpenAICompatibleBackend, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("temperature", 0.7)
    kw.setdefault("max_tokens", 4096)
    return await b.complete(MESSAGES, **kw)


def outcomes(m: dict[str, float]) -> dict[str, int]:
    return {k.split('"')[1]: int(v) for k, v in m.items() if k.startswith("requests_total{") and v}


# --------------------------------------------------------------------------- the happy path


async def test_completion_carries_text_and_provenance(sim) -> None:
    b = backend(sim)
    try:
        assert isinstance(b, ChatBackend)
        [c] = await ask(b, seed=1)
    finally:
        await b.aclose()
    assert c.text.startswith("(simulated) ")
    assert extract_answer(c.text, OPTIONS) in OPTIONS
    assert c.finish_reason == "stop"
    assert c.prompt_tokens and c.prompt_tokens > 50
    assert c.completion_tokens and c.completion_tokens > 100
    assert c.latency_ms > 0
    assert (c.model, c.endpoint, c.index) == ("sim/test-model", "sim", 0)
    assert c.request_id and c.request_id.startswith("chatcmpl-sim-")


async def test_same_request_same_text_and_another_seed_differs(sim) -> None:
    b = backend(sim)
    try:
        [first] = await ask(b, seed=7)
        [again] = await ask(b, seed=7)
        [other] = await ask(b, seed=8)
    finally:
        await b.aclose()
    assert first.text == again.text
    assert other.text != first.text


async def test_n_in_one_request_and_as_n_seeded_requests_agree(sim) -> None:
    one_request = backend(sim, supports_n=True)
    fan_out = backend(sim, supports_n=False)
    try:
        sim.reset_metrics()
        shared = await ask(one_request, n=3, seed=100)
        assert outcomes(sim.metrics()) == {"ok": 1}
        sim.reset_metrics()
        separate = await ask(fan_out, n=3, seed=100)
        assert outcomes(sim.metrics()) == {"ok": 3}
        [single] = await ask(fan_out, seed=102)
    finally:
        await one_request.aclose()
        await fan_out.aclose()
    assert [c.index for c in shared] == [0, 1, 2] == [c.index for c in separate]
    # Choice i of an n-request with seed s is choice 0 of a request with seed s + i, both ways.
    assert [c.text for c in shared] == [c.text for c in separate]
    assert separate[2].text == single.text
    assert len({c.text for c in shared}) == 3
    assert len({c.request_id for c in shared}) == 1 and len({c.request_id for c in separate}) == 3
    # The request's completion tokens are shared out over its choices, summing to the server's count.
    assert all(c.completion_tokens and c.completion_tokens > 0 for c in shared)


async def test_stop_and_max_tokens_pass_through(sim) -> None:
    b = backend(sim)
    try:
        [short] = await ask(b, seed=1, max_tokens=20)
        [stopped] = await ask(b, seed=1, stop=["Step 2"])
    finally:
        await b.aclose()
    assert (
        short.finish_reason == "length"
        and short.completion_tokens is not None
        and short.completion_tokens <= 20
    )
    assert "Step 2" not in stopped.text and stopped.text.startswith("(simulated) Step 1")


# --------------------------------------------------------------------------- faults that are retried


TRANSIENT = ("429", "500", "drop", "malformed", "hang")


async def test_transient_faults_are_retried(sim_factory) -> None:
    """Each fault once, then a good reply: 429 waits for Retry-After, a hang is cut by the timeout."""
    script = [x for fault in TRANSIENT for x in (fault, "ok")]
    server = sim_factory(fault_script=script, retry_after=1.0, hang_seconds=30.0)
    usage = UsageTracker()
    b = backend(server, usage=usage, timeout_s=0.5)
    try:
        for k, fault in enumerate(TRANSIENT, start=1):
            started = time.perf_counter()
            [c] = await ask(b, seed=k)
            elapsed = time.perf_counter() - started
            assert c.finish_reason == "stop" and extract_answer(c.text, OPTIONS) in OPTIONS, fault
            assert outcomes(server.metrics()) == {"ok": k, **{f: 1 for f in TRANSIENT[:k]}}, fault
            if fault == "429":
                assert elapsed >= 1.0  # the server's Retry-After, not the 10 ms backoff base
            if fault == "hang":
                assert elapsed >= 0.5  # cut by the client's timeout, then retried
    finally:
        await b.aclose()
    [row] = usage.snapshot()
    assert (row.calls, row.retries, row.failures) == (len(TRANSIENT), len(TRANSIENT), 0)
    deadline = time.monotonic() + 5
    while server.metrics()["client_disconnects_total"] < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    m = server.metrics()
    assert (
        m["client_disconnects_total"] == 1 and m["in_flight"] == 0
    )  # the server saw the timed-out client leave


async def test_slot_is_released_while_a_request_waits_to_retry(sim_factory) -> None:
    """Cap 1: a request sleeping on Retry-After must not block another request meanwhile."""
    server = sim_factory(retry_after=1.0, fault_script=["429"])
    b = backend(server, max_in_flight=1)
    finished: dict[str, float] = {}
    started = time.perf_counter()

    async def timed(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await ask(b, seed=1)
        finished[name] = time.perf_counter() - started

    try:
        await asyncio.gather(timed("rate_limited", 0.0), timed("other", 0.2))
    finally:
        await b.aclose()
    # The other request finished while the first waited out its Retry-After: had the waiting request kept
    # the only slot, the other would finish after it (order, not a wall-clock bound, so load cannot fake it).
    assert finished["other"] < finished["rate_limited"] and finished["rate_limited"] >= 1.0


# --------------------------------------------------------------------------- faults that are returned


async def test_truncate_and_noanswer_are_returned_not_retried(sim_factory) -> None:
    server = sim_factory(fault_script=["truncate", "noanswer"])
    b = backend(server)
    try:
        [truncated] = await ask(b, seed=1)
        [no_answer] = await ask(b, seed=1)
    finally:
        await b.aclose()
    assert outcomes(server.metrics()) == {"truncate": 1, "noanswer": 1}  # one request each: no retry
    assert truncated.finish_reason == "length"
    assert extract_answer(truncated.text, OPTIONS) is None
    assert no_answer.finish_reason == "stop" and no_answer.text.startswith("(simulated)")
    assert extract_answer(no_answer.text, OPTIONS) is None  # the pipeline's parser finds no answer


# --------------------------------------------------------------------------- client errors: never retried


async def test_unknown_route_refuses_the_endpoint_without_retry_and_opens_its_breaker(sim) -> None:
    b = OpenAICompatibleBackend("sim", sim_endpoint(sim, base_url=sim.root_url + "/no-such-api"))
    try:
        with pytest.raises(LLMError) as info:
            await ask(b, seed=1)
    finally:
        await b.aclose()
    err = info.value
    assert (err.kind, err.retryable, err.attempts, err.status_code) == ("endpoint_refused", False, 1, 404)
    # A wrong route refuses every request: the breaker opens at once and nothing more is sent.
    assert b.breaker.is_open
    with pytest.raises(LLMError) as again:
        b.breaker.check()
    assert again.value.kind == "endpoint_down" and "HTTP 404" in str(again.value)


async def test_invalid_body_is_a_client_error_without_retry(sim) -> None:
    b = backend(sim)
    sim.reset_metrics()
    try:
        with pytest.raises(LLMError) as info:
            await b.complete(MESSAGES, temperature=7.5, max_tokens=10)  # the server accepts 0..2
    finally:
        await b.aclose()
    assert (info.value.kind, info.value.attempts, info.value.status_code) == ("client_error", 1, 400)
    assert "temperature" in str(info.value)
    assert outcomes(sim.metrics()) == {"invalid": 1}


# --------------------------------------------------------------------------- retries exhausted


async def test_exhausted_retries_raise_the_last_kind(sim_factory) -> None:
    kinds = {
        "429": "rate_limited",
        "500": "server_error",
        "drop": "connection",
        "malformed": "bad_response",
        "hang": "timeout",
    }
    server = sim_factory(
        fault_script=[f for f in kinds for _ in range(3)], retry_after=0.0, hang_seconds=30.0
    )
    b = backend(server, max_retries=2, timeout_s=0.3)
    try:
        for fault, kind in kinds.items():
            with pytest.raises(LLMError) as info:
                await ask(b, seed=1)
            err = info.value
            assert (err.kind, err.attempts, err.retryable) == (kind, 3, True), fault
            assert err.endpoint == "sim" and kind in str(err) and "after 3 attempt(s)" in str(err)
            assert outcomes(server.metrics())[fault] == 3
    finally:
        await b.aclose()


async def test_connection_refused_is_a_connection_error(sim_factory) -> None:
    server = sim_factory()
    cfg = sim_endpoint(server, max_retries=1)
    server.stop()  # nothing listens on that port any more
    b = OpenAICompatibleBackend("gone", cfg)
    try:
        with pytest.raises(LLMError) as info:
            await ask(b)
    finally:
        await b.aclose()
    assert (info.value.kind, info.value.attempts) == ("connection", 2)


# --------------------------------------------------------------------------- the cap


async def test_in_flight_never_exceeds_the_cap(sim_factory) -> None:
    server = sim_factory(base_latency_ms=40.0)
    b = backend(server, max_in_flight=16)
    try:
        results = await asyncio.gather(*(ask(b, seed=i, max_tokens=64) for i in range(200)))
    finally:
        await b.aclose()
    assert len(results) == 200
    m = server.metrics()
    assert m['requests_total{outcome="ok"}'] == 200
    assert 8 < m["in_flight_peak"] <= 16


async def test_the_cap_holds_while_requests_are_retried(sim_factory) -> None:
    """Retries give their slot back while they wait and take one again to retry: never more than the
    cap in flight, even with a third of the requests failing (429 with Retry-After, 500, drops)."""
    server = sim_factory(
        base_latency_ms=30.0, faults={"429": 0.15, "500": 0.1, "drop": 0.08}, retry_after=0.05, fault_seed=11
    )
    b = backend(server, max_in_flight=12, max_retries=10)
    try:
        results = await asyncio.gather(*(ask(b, seed=i, max_tokens=64) for i in range(150)))
    finally:
        await b.aclose()
    assert len(results) == 150
    m = server.metrics()
    retried = (
        m['requests_total{outcome="429"}']
        + m['requests_total{outcome="500"}']
        + m['requests_total{outcome="drop"}']
    )
    assert retried > 20 and m['requests_total{outcome="ok"}'] == 150
    assert 6 < m["in_flight_peak"] <= 12


# --------------------------------------------------------------------------- secrets


async def test_api_key_is_sent_but_never_logged(sim_factory, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-reasonmed-test-5f1d2c3b4a"
    server = sim_factory(
        faults={"429": 0.15, "500": 0.15, "drop": 0.1, "malformed": 0.1}, retry_after=0.0, fault_seed=3
    )
    caplog.set_level(logging.DEBUG)
    b = backend(server, api_key=secret, max_retries=8)
    errors: list[str] = []
    try:
        results = await asyncio.gather(*(ask(b, seed=i) for i in range(30)), return_exceptions=True)
        errors = [str(r) + repr(r) for r in results if isinstance(r, BaseException)]
        with pytest.raises(LLMError) as info:
            await b.complete(MESSAGES, temperature=9.0, max_tokens=10)
        errors.append(str(info.value))
    finally:
        await b.aclose()
    m = server.metrics()
    attempts = sum(outcomes(m).values())
    assert attempts > 30  # faults happened and were retried
    # Every request that reached the chat handler carried the header (the invalid one is rejected first).
    assert m["requests_with_authorization_total"] == attempts - m['requests_total{outcome="invalid"}'] > 30
    assert any("retrying" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "\n".join(errors) + repr(b)
    assert secret not in logged
    assert "Bearer" not in logged


# --------------------------------------------------------------------------- pieces


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (parse_retry_after(in_ten) or 0) <= 10.0
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(seconds=10), usegmt=True)) == 0.0


def _pipeline(base_url: str, **endpoint: object):  # type: ignore[no-untyped-def]
    return parse_pipeline_config(
        {
            "endpoints": {
                "sim": {"base_url": base_url, "model": "sim/priced", "max_in_flight": 8, **endpoint}
            },
            "agents": {
                "generators": [{"endpoint": "sim", "temperatures": [0.7]}],
                "verifier": {"endpoint": "sim"},
                "ranker": {"endpoint": "sim"},
                "refiner": {"endpoint": "sim"},
                "regenerator": {"endpoint": "sim"},
                "summarizer": {"endpoint": "sim"},
            },
            "tiers": {"easy_min_correct": 1, "medium_min_correct": 1},
        }
    )


async def test_registry_makes_one_backend_per_endpoint_and_totals_usage(sim) -> None:
    config = _pipeline(sim.base_url, price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    registry = LLMRegistry(config)
    try:
        backend_ = registry.get("sim")
        assert registry.get("sim") is backend_
        with pytest.raises(KeyError, match="unknown endpoint 'nope'"):
            registry.get("nope")
        completions = await backend_.complete(MESSAGES, temperature=0.7, max_tokens=4096, n=2, seed=5)
    finally:
        await registry.aclose()
    [row] = registry.usage
    assert (row.endpoint, row.model, row.calls) == ("sim", "sim/priced", 1)
    assert row.completion_tokens == sum(c.completion_tokens or 0 for c in completions)
    assert row.prompt_tokens == completions[0].prompt_tokens
    assert row.cost_usd == pytest.approx((row.prompt_tokens * 1.0 + row.completion_tokens * 2.0) / 1e6)


async def test_registry_sends_the_key_from_the_environment(
    sim_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sim_factory()
    monkeypatch.setenv("REASONMED_TEST_SIM_KEY", "sk-from-env")
    registry = LLMRegistry(_pipeline(server.base_url, api_key_env="REASONMED_TEST_SIM_KEY"))
    try:
        await registry.get("sim").complete(MESSAGES, temperature=0.7, max_tokens=4096)
    finally:
        await registry.aclose()
    assert server.metrics()["requests_with_authorization_total"] == 1


def test_registry_reads_the_key_from_a_prefect_secret_and_never_logs_it(
    sim_factory, prefect_harness, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.blocks.system import Secret

    from reasonmed.tasks.secrets import load_prefect_secret

    Secret(value="sk-from-prefect-secret").save("reasonmed-test-sim-key", overwrite=True)
    server = sim_factory()
    cfg = _pipeline(server.base_url, api_key_secret="reasonmed-test-sim-key")

    async def call() -> None:
        registry = LLMRegistry(cfg, secret_loader=load_prefect_secret)
        try:
            await registry.get("sim").complete(MESSAGES, temperature=0.7, max_tokens=4096)
        finally:
            await registry.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(call())
    assert server.metrics()["requests_with_authorization_total"] == 1
    assert "sk-from-prefect-secret" not in caplog.text
    with pytest.raises(ConfigError, match="api_key_secret: secrets are read by the Prefect flows"):
        resolve_api_key(cfg.endpoints["sim"], "sim")  # no loader outside the flows: said up front
    with pytest.raises(RuntimeError, match="'reasonmed-test-missing' could not be loaded"):
        load_prefect_secret("reasonmed-test-missing")


def test_missing_key_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REASONMED_TEST_UNSET_KEY", raising=False)
    cfg = _pipeline("http://127.0.0.1:9/v1", api_key_env="REASONMED_TEST_UNSET_KEY").endpoints["sim"]
    with pytest.raises(ConfigError, match="REASONMED_TEST_UNSET_KEY"):
        resolve_api_key(cfg, "sim")
    assert resolve_api_key(_pipeline("http://127.0.0.1:9/v1").endpoints["sim"]) is None


def test_registry_needs_a_running_loop() -> None:
    registry = LLMRegistry(_pipeline("http://127.0.0.1:9/v1"))
    with pytest.raises(RuntimeError, match="running event loop"):
        registry.get("sim")


def test_llm_error_survives_pickling() -> None:
    import pickle

    err = LLMError("endpoint x: timeout", kind="timeout", attempts=4, status_code=None, endpoint="x")
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.kind, copy.attempts, copy.retryable, copy.endpoint) == (
        str(err),
        "timeout",
        4,
        True,
        "x",
    )
