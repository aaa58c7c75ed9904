"""Context budgets over real HTTP against the simulator started with a vLLM-like ``--max-model-len``: it lists
the context on /v1/models and answers 400, as vLLM does, to a request whose prompt plus max_tokens exceeds it.

The preflight reads that context, a request that would exceed it is sent with a lower max_tokens and served,
one that cannot fit at all is refused unsent with a final error, and ``config check --ping`` names the roles
whose largest request can exceed it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonmed.cli import app
from reasonmed.config import parse_pipeline_config
from reasonmed.llm import LLMError, LLMRegistry
from reasonmed.llm.context import estimate_prompt_tokens
from reasonmed.llm.openai_backend import OpenAICompatibleBackend
from reasonmed.prompts import context_block, format_options, get_template
from tests.fixtures_pipeline import write_sim_config
from tests.fixtures_sim import sim_endpoint

CONTEXT = 2048
MESSAGES = get_template("generate").render(
    question="A 65-year-old man has crushing chest pain for 2 hours. Which drug should be given first?",
    context_block=context_block(None),
    options=format_options({"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}),
)


def _pipeline(base_url: str, **endpoint: object):  # type: ignore[no-untyped-def]
    ep = {
        "base_url": base_url,
        "model": "sim/ctx",
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_base_s": 0.01,
    }
    return parse_pipeline_config(
        {
            "endpoints": {"sim": {**ep, **endpoint}},
            "agents": {
                "generators": [{"endpoint": "sim", "temperatures": [0.7]}],
                **{
                    r: {"endpoint": "sim"}
                    for r in ("verifier", "ranker", "refiner", "regenerator", "summarizer")
                },
            },
            "tiers": {"easy_min_correct": 1, "medium_min_correct": 1},
        }
    )


def _outcomes(sim) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        k.split('"')[1]: int(v) for k, v in sim.metrics().items() if k.startswith("requests_total{") and v
    }


async def test_a_request_over_the_context_is_lowered_and_served_instead_of_refused(sim_factory) -> None:
    sim = sim_factory(max_model_len=CONTEXT)
    # Without the context, the request is refused as vLLM refuses it: a 400, final for the question.
    blind = OpenAICompatibleBackend("sim", sim_endpoint(sim))
    try:
        with pytest.raises(LLMError) as refused:
            await blind.complete(MESSAGES, temperature=0.7, max_tokens=4096)
    finally:
        await blind.aclose()
    assert (refused.value.kind, refused.value.status_code) == ("client_error", 400)
    assert "maximum context length is 2048" in str(refused.value)
    # The run's registry learns the context from the preflight and its backend fits max_tokens to it.
    registry = LLMRegistry(_pipeline(sim.base_url))
    try:
        (check,) = await registry.check()
        assert check.ok and check.context.reported == CONTEXT
        assert "context 2,048 tokens (reported by the server)" in check.line()
        [c] = await registry.get("sim").complete(MESSAGES, temperature=0.7, max_tokens=4096, seed=1)
    finally:
        await registry.aclose()
    assert c.max_tokens == CONTEXT - estimate_prompt_tokens(MESSAGES)
    assert c.prompt_tokens is not None and c.prompt_tokens + c.max_tokens <= CONTEXT
    assert c.finish_reason == "stop" and c.text
    assert _outcomes(sim) == {"context": 1, "ok": 1}


async def test_a_prompt_that_leaves_no_room_is_refused_unsent_with_a_final_error(sim_factory) -> None:
    sim = sim_factory(max_model_len=CONTEXT)
    long_case = [{"role": "user", "content": "The patient's history: " + "fever and cough. " * 400}]
    registry = LLMRegistry(_pipeline(sim.base_url))
    try:
        await registry.check()
        with pytest.raises(LLMError) as err:
            await registry.get("sim").complete(long_case, temperature=0.7, max_tokens=512)
    finally:
        await registry.aclose()
    assert (err.value.kind, err.value.retryable, err.value.attempts) == ("context_exceeded", False, 0)
    assert "2,048-token context" in str(err.value) and "not sent" in str(err.value)
    assert _outcomes(sim) == {}  # nothing reached the server
    [row] = registry.usage
    assert (row.calls, row.failures) == (0, 1)


async def test_the_smaller_of_the_reported_and_declared_context_is_used(sim_factory) -> None:
    sim = sim_factory(max_model_len=CONTEXT)
    registry = LLMRegistry(_pipeline(sim.base_url, context_tokens=1024))
    try:
        (check,) = await registry.check()
        [c] = await registry.get("sim").complete(MESSAGES, temperature=0.7, max_tokens=4096, seed=1)
    finally:
        await registry.aclose()
    assert (check.context.declared, check.context.reported, check.context.tokens) == (1024, CONTEXT, 1024)
    assert "the server reports 2,048, context_tokens says 1,024; the smaller is used" in check.line()
    assert c.max_tokens == 1024 - estimate_prompt_tokens(MESSAGES)


def test_config_check_ping_names_the_roles_over_the_context(sim_factory, tmp_path: Path) -> None:
    """The default pipeline on a 12,000-token server: a generated path of 8,192 tokens fits beside each judge's
    budget, but the refiner and regenerator also read the error reasons and write 8,192 tokens."""
    sim = sim_factory(max_model_len=12_000)
    config = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
    result = CliRunner().invoke(app, ["config", "check", "--config", str(config), "--ping"])
    out = result.output
    assert result.exit_code == 1, out
    assert "endpoint sim-refiner (" in out and "context 12,000 tokens (reported by the server)" in out
    named = sorted(line.split()[1] for line in out.splitlines() if line.startswith("budget "))
    assert named == ["refiner", "regenerator"], out
    assert "budget refiner on sim-refiner: a prompt of up to" in out and "> context 12,000" in out
    assert "error: 2 role(s) can exceed their endpoint's context" in out
    # On a server large enough for every role, the check passes and says so.
    roomy = sim_factory(max_model_len=32_768)
    config = write_sim_config(tmp_path / "roomy.yaml", roomy.base_url)
    ok = CliRunner().invoke(app, ["config", "check", "--config", str(config), "--ping"])
    assert ok.exit_code == 0, ok.output
    assert "budgets: every role's largest request fits its endpoint's context" in ok.output
    assert "config OK" in ok.output
