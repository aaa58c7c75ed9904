"""The simulation server over real HTTP (a separate process on a free loopback port), and the pure
functions that say what it answers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from reasonmed.db.engine import make_engine
from reasonmed.db.models import Question as QuestionRow
from reasonmed.parsing import extract_answer, parse_score, parse_summary, parse_verdict
from reasonmed.prompts import ROLES, context_block, format_errors, format_options, get_template
from reasonmed.sim.behaviour import (
    Behaviour,
    SimRequest,
    choose_label,
    detect_role,
    parse_prompt,
    rank_score,
    respond,
)
from reasonmed.sim.engine import EngineEmulator
from reasonmed.sim.faults import FaultPlan
from reasonmed.sim.launcher import SimServer, SimServerError
from reasonmed.sim.metrics import SimMetrics, parse_metrics
from reasonmed.sim.settings import SimSettings

OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}
QUESTION = (
    "A 65-year-old man presents with crushing chest pain for 2 hours. Which drug should be given first?"
)


def render(
    role: str,
    *,
    question: str = QUESTION,
    options: dict[str, str] = OPTIONS,
    answer: str = "A",
    path: str = "",
    errors: list[str] | None = None,
    context: str | None = None,
) -> list[dict[str, str]]:
    fields = {
        "question": question,
        "context_block": context_block(context),
        "options": format_options(options),
    }
    if role != "generate":
        fields["path"] = path
    if role not in ("generate", "summarize"):
        fields["answer"] = answer
    if role in ("refine", "regenerate"):
        fields["errors"] = format_errors(errors or ["The reasoning confused a risk factor with the cause."])
    return get_template(role).render(**fields)


def chat(
    server: SimServer,
    messages: list[dict[str, str]],
    *,
    model: str = "sim/test-model",
    timeout: float = 10.0,
    **params: object,
) -> httpx.Response:
    body = {"model": model, "messages": messages, "temperature": 0.7, **params}
    return httpx.post(server.base_url + "/chat/completions", json=body, timeout=timeout)


def texts(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["message"]["content"] for c in response.json()["choices"]]


def sim_request(
    messages: list[dict[str, str]],
    *,
    model: str = "sim/test-model",
    temperature: float = 0.7,
    **params: object,
) -> SimRequest:
    return SimRequest(
        model=model,
        messages=tuple((m["role"], m["content"]) for m in messages),
        temperature=temperature,
        **params,
    )  # type: ignore[arg-type]


def path_answering(label: str, *, seed: int = 0) -> str:
    """A generated path that ends with ``Final answer: <label>`` (found by trying seeds)."""
    for s in range(seed, seed + 500):
        [choice] = respond(sim_request(render("generate"), seed=s), Behaviour())[1]
        if extract_answer(choice.text, OPTIONS) == label:
            return choice.text
    raise AssertionError(f"no seed gives {label}")


# --------------------------------------------------------------------------- labelled as a simulator


def test_everything_it_serves_is_labelled_simulated(sim: SimServer) -> None:
    response = chat(sim, render("generate"), seed=1)
    assert response.headers["x-reasonmed-simulator"] == "1"
    payload = response.json()
    assert payload["system_fingerprint"] == "reasonmed-simulator"
    assert payload["object"] == "chat.completion" and payload["model"] == "sim/test-model"
    assert payload["choices"][0]["message"]["content"].startswith("(simulated) ")
    usage = payload["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    models = httpx.get(sim.base_url + "/models").json()
    assert models["object"] == "list" and models["data"]
    assert {m["owned_by"] for m in models["data"]} == {"reasonmed-simulator"}
    health = httpx.get(sim.root_url + "/health")
    assert health.status_code == 200 and health.headers["x-reasonmed-simulator"] == "1"


def test_a_client_that_takes_the_first_listed_model_is_served(sim_factory) -> None:
    """/v1/models lists only names /v1/chat/completions serves: a fresh simulator, one with models
    configured, and one that has served a model all answer for every name they list, first one first."""
    fresh = sim_factory()
    configured = sim_factory(accuracy={"sim/zeta": 0.9, "sim/alpha": 0.5})
    used = sim_factory()
    assert texts(chat(used, render("generate"), model="sim/used-before"))
    for server in (fresh, configured, used):
        listed = [m["id"] for m in httpx.get(server.base_url + "/models", timeout=10).json()["data"]]
        assert listed, server.base_url
        for model in listed:
            response = chat(server, render("generate"), model=model)
            assert response.status_code == 200, (model, response.text)
            assert response.json()["model"] == model
    first = httpx.get(configured.base_url + "/models", timeout=10).json()["data"][0]["id"]
    assert first == "sim/alpha"


def test_an_accuracy_for_a_model_the_simulator_would_refuse_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="serves only models named sim/"):
        SimSettings(accuracy={"gpt-4o": 0.8})


def test_unknown_routes_and_bad_bodies_are_client_errors(sim: SimServer) -> None:
    assert httpx.get(sim.root_url + "/v2/nothing").status_code == 404
    assert httpx.get(sim.base_url + "/chat/completions").status_code == 405
    url = sim.base_url + "/chat/completions"
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, json={"model": "m", "messages": []}).status_code == 400
    assert (
        httpx.post(
            url, json={"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}
        ).status_code
        == 400
    )
    bad = httpx.post(url, json={"messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 400 and "model" in bad.json()["error"]["message"]


def test_metrics_count_roles_models_tokens_and_authorization(sim: SimServer) -> None:
    sim.reset_metrics()
    assert sim.metrics()['requests_total{outcome="ok"}'] == 0
    for role in ROLES:
        assert chat(sim, render(role, path=path_answering("A")), model=f"sim/{role}").status_code == 200
    httpx.post(
        sim.base_url + "/chat/completions",
        headers={"Authorization": "Bearer sk-x"},
        json={"model": "sim/auth", "messages": render("generate")},
    )
    m = sim.metrics()
    assert m['requests_total{outcome="ok"}'] == len(ROLES) + 1
    assert m['requests_by_role_total{role="generate"}'] == 2
    for role in ROLES:
        assert m[f'requests_by_role_total{{role="{role}"}}'] >= 1
        assert m[f'requests_by_model_total{{model="sim/{role}"}}'] == 1
    assert m["requests_with_authorization_total"] == 1
    assert m["prompt_tokens_total"] > 0 and m["completion_tokens_total"] > 0
    assert m["in_flight"] == 0 and m["in_flight_peak"] >= 1 and m["uptime_seconds"] > 0
    text = httpx.get(sim.root_url + "/metrics").text
    assert "# TYPE reasonmed_sim_requests_total counter" in text
    assert "reasonmed_sim_in_flight_time_avg" in text


# --------------------------------------------------------------------------- deterministic answers


def test_generation_is_what_the_pure_functions_say(sim: SimServer) -> None:
    messages = render("generate")
    served = texts(chat(sim, messages, seed=11, n=2, max_tokens=8192))
    role, expected = respond(sim_request(messages, seed=11, n=2, max_tokens=8192), Behaviour())
    assert role == "generate"
    assert served == [c.text for c in expected]
    # With no answer key the label is uniform by hash; choice i of seed s is choice 0 of seed s + i.
    for i, text in enumerate(served):
        label = choose_label(
            model="sim/test-model",
            temperature=0.7,
            seed=11 + i,
            question=QUESTION,
            options=list(OPTIONS),
            correct=None,
            accuracy=0.6,
        )
        assert extract_answer(text, OPTIONS) == label
    assert texts(chat(sim, messages, seed=12, max_tokens=8192)) == served[1:]
    assert texts(chat(sim, messages, seed=11, max_tokens=8192)) == served[:1]


def test_r1_style_models_think_in_tags(sim: SimServer) -> None:
    [text] = texts(chat(sim, render("generate"), model="sim/DeepSeek-R1-Distill-Llama-70B", seed=3))
    assert text.startswith("<think>\n(simulated) ") and "</think>" in text
    after = text.split("</think>", 1)[1]
    assert after.lstrip().startswith("(simulated) ") and extract_answer(after, OPTIONS) in OPTIONS


def test_verifier_checks_the_paths_answer_against_the_key(sim: SimServer) -> None:
    path_a = path_answering("A")
    right = parse_verdict(texts(chat(sim, render("verify", path=path_a, answer="A")))[0])
    wrong = parse_verdict(texts(chat(sim, render("verify", path=path_a, answer="C")))[0])
    assert right is not None and right.outcome == "correct"
    assert wrong is not None and wrong.outcome == "error"
    assert "option A (Aspirin)" in wrong.reason and "option C (Warfarin)" in wrong.reason
    assert wrong.reason.startswith("(simulated) ") and right.reason.startswith("(simulated) ")  # labelled
    no_answer = "(simulated) I considered the options but did not decide."
    silent = parse_verdict(texts(chat(sim, render("verify", path=no_answer, answer="A")))[0])
    assert silent is not None and silent.outcome == "error" and "never states" in silent.reason


def test_ranker_scores_and_summariser_restates_the_paths_answer(sim: SimServer) -> None:
    path_b = path_answering("B")
    raw = texts(chat(sim, render("rank", path=path_b, answer="B"), temperature=0.0))[0]
    score = parse_score(raw)
    assert score is not None and 2 <= score.score <= 5
    assert score.score == rank_score(model="sim/test-model", question=QUESTION, path=path_b, options=OPTIONS)
    assert json.loads(raw)["justification"].startswith("(simulated)")
    summary = parse_summary(texts(chat(sim, render("summarize", path=path_b), temperature=0.5))[0])
    assert summary is not None and summary.startswith("The answer is B (Heparin).")


def test_refiner_and_regenerator_mostly_reach_the_given_answer(sim: SimServer) -> None:
    failed = path_answering("C")
    hits = 0
    for seed in range(10):
        for role in ("refine", "regenerate"):
            [text] = texts(
                chat(
                    sim,
                    render(role, path=failed, answer="B", errors=["Chose C: wrong drug."]),
                    seed=seed,
                    max_tokens=8192,
                )
            )
            assert text.startswith("(simulated) ") and "wrong drug" in text
            hits += extract_answer(text, OPTIONS) == "B"
    assert hits >= 14  # --refine-accuracy defaults to 0.9


def test_stop_sequences_and_max_tokens(sim: SimServer) -> None:
    response = chat(sim, render("generate"), seed=1, max_tokens=15)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length" and response.json()["usage"]["completion_tokens"] <= 15
    [text] = texts(chat(sim, render("generate"), seed=1, stop="Step 3"))
    assert "Step 2" in text and "Step 3" not in text


# --------------------------------------------------------------------------- faults


def test_each_fault_kind_over_http(sim_factory) -> None:
    script = [
        "429",
        "500",
        "drop",
        "malformed",
        "truncate",
        "noanswer",
        "noanswer",
        "noanswer",
        "noanswer",
        "hang",
    ]
    server = sim_factory(fault_script=script, retry_after=7.0, hang_seconds=30.0)
    limited = chat(server, render("generate"))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.headers["x-reasonmed-simulator"] == "1"
    assert chat(server, render("generate")).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):  # the connection closes with no response at all
        chat(server, render("generate"))
    malformed = chat(server, render("generate"))
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    truncated = chat(server, render("generate"), seed=1)
    assert truncated.json()["choices"][0]["finish_reason"] == "length"
    assert extract_answer(texts(truncated)[0], OPTIONS) is None
    # noanswer: each role's output is something the pipeline's parsers reject
    path_a = path_answering("A")
    assert extract_answer(texts(chat(server, render("generate"), seed=1))[0], OPTIONS) is None
    assert parse_verdict(texts(chat(server, render("verify", path=path_a)))[0]) is None
    assert parse_score(texts(chat(server, render("rank", path=path_a)))[0]) is None
    assert texts(chat(server, render("summarize", path=path_a))) == [""]
    with pytest.raises(httpx.ReadTimeout):
        chat(server, render("generate"), timeout=0.3)
    deadline = time.monotonic() + 5
    while server.metrics()["client_disconnects_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    m = server.metrics()
    assert m["client_disconnects_total"] == 1 and m["in_flight"] == 0  # the hang ended when the client left
    expected = {
        "429": 1,
        "500": 1,
        "drop": 1,
        "malformed": 1,
        "truncate": 1,
        "noanswer": 4,
        "hang": 1,
        "ok": 0,
    }
    assert {k: int(m[f'requests_total{{outcome="{k}"}}']) for k in expected} == expected


def test_fault_rate_follows_the_seeded_plan(sim_factory) -> None:
    server = sim_factory(fault_rate=0.5, fault_kinds=("500", "429"), fault_seed=7, retry_after=0.0)
    plan = FaultPlan(0.5, ["500", "429"], seed=7)
    expected = [plan.draw() for _ in range(24)]
    observed = []
    for _ in range(24):
        status = chat(server, render("generate")).status_code
        observed.append({200: None, 500: "500", 429: "429"}[status])
    assert observed == expected
    assert 5 <= sum(o is not None for o in observed) <= 19


def test_fault_plan_validates_and_spreads_rates() -> None:
    plan = FaultPlan(0.7, seed=1, per_kind={"500": 0.1})
    assert plan.rates["500"] == pytest.approx(0.2) and plan.rates["hang"] == pytest.approx(0.1)
    draws = [plan.draw() for _ in range(20_000)]
    assert draws.count(None) / len(draws) == pytest.approx(0.2, abs=0.02)
    assert draws.count("500") / len(draws) == pytest.approx(0.2, abs=0.02)
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(0.1, ["teapot"])
    with pytest.raises(ValueError, match="add up to"):
        FaultPlan(0.9, per_kind={"500": 0.5})


# --------------------------------------------------------------------------- engine emulation


async def test_batch_limit_queues_and_latency_follows_tokens() -> None:
    body = {"model": "sim/m", "messages": render("generate"), "max_tokens": 100}
    async with SimServer(base_latency_ms=100.0, per_token_ms=0.2, max_num_seqs=4) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            started = time.perf_counter()
            responses = await asyncio.gather(
                *(client.post(server.base_url + "/chat/completions", json=body) for _ in range(12))
            )
            elapsed = time.perf_counter() - started
            single_start = time.perf_counter()
            one = await client.post(server.base_url + "/chat/completions", json={**body, "max_tokens": 2000})
            single = time.perf_counter() - single_start
        m = server.metrics()
    assert server.root_url is None  # stopped on leaving the block
    assert all(r.status_code == 200 for r in responses)
    per_request = 0.1 + 0.0002 * 100
    assert elapsed >= 3 * per_request  # 12 requests, 4 at a time
    tokens = one.json()["usage"]["completion_tokens"]
    assert single >= 0.1 + 0.0002 * tokens
    # More in flight than the 4 running: the rest queued inside the simulator (all 12 at once on a quiet
    # machine; on a loaded one the first may finish before the last arrives, so no exact count is asked).
    assert 4 < m["in_flight_peak"] <= 12 and m["running"] == 0 and m["in_flight_time_avg"] > 0


async def test_engine_slots_are_served_first_in_first_out() -> None:
    engine = EngineEmulator(max_num_seqs=1, base_latency_ms=20, per_token_ms=0, metrics=SimMetrics())
    order: list[int] = []

    async def run(i: int) -> None:
        await engine.generate(0)
        order.append(i)

    tasks = [asyncio.create_task(run(i)) for i in range(6)]
    await asyncio.sleep(0)
    tasks[2].cancel()  # a cancelled waiter gives its turn away
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 3, 4, 5]


# --------------------------------------------------------------------------- answer keys


def _insert_question(url: str, question: str, options: dict[str, str], answer: str) -> None:
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            session.add(
                QuestionRow(
                    content_hash=uuid.uuid4().hex * 2,
                    source="custom",
                    source_id=uuid.uuid4().hex,
                    question=question,
                    options=[[k, v] for k, v in options.items()],
                    answer=answer,
                )
            )
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_answer_keys_from_the_questions_table(pg_url: str, sim_factory) -> None:
    _insert_question(pg_url, QUESTION, OPTIONS, "D")
    server = sim_factory(
        questions_db=pg_url,
        accuracy={"sim/always-right": 1.0, "sim/always-wrong": 0.0},
        verifier_error_rate=1.0,
    )
    for seed in range(5):
        [right] = texts(chat(server, render("generate"), model="sim/always-right", seed=seed))
        [wrong] = texts(chat(server, render("generate"), model="sim/always-wrong", seed=seed))
        assert extract_answer(right, OPTIONS) == "D"
        assert extract_answer(wrong, OPTIONS) in {"A", "B", "C"}
    # A question ingested after start is found on a later miss (reloads are at most once a second).
    later_q = "Which vitamin deficiency causes scurvy in a 40-year-old sailor?"
    later_opts = {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D"}
    _insert_question(pg_url, later_q, later_opts, "B")
    time.sleep(1.1)
    [found] = texts(
        chat(server, render("generate", question=later_q, options=later_opts), model="sim/always-right")
    )
    assert extract_answer(found, later_opts) == "B"
    # --verifier-error-rate 1.0 flips every verdict.
    flipped = parse_verdict(texts(chat(server, render("verify", path=path_answering("A"), answer="A")))[0])
    assert flipped is not None and flipped.outcome == "error"


def test_accuracy_is_the_fraction_of_correct_choices() -> None:
    picks = [
        choose_label(
            model="m", temperature=0.7, seed=s, question=f"q{s}", options="ABCD", correct="C", accuracy=0.7
        )
        for s in range(3000)
    ]
    assert picks.count("C") / len(picks) == pytest.approx(0.7, abs=0.03)
    assert {"A", "B", "D"} <= set(picks)
    unknown = [
        choose_label(
            model="m", temperature=0.7, seed=s, question="q", options="ABCD", correct=None, accuracy=1.0
        )
        for s in range(2000)
    ]
    assert all(abs(unknown.count(x) / 2000 - 0.25) < 0.04 for x in "ABCD")


# --------------------------------------------------------------------------- prompt reading


def test_roles_are_detected_from_every_template() -> None:
    for role in ROLES:
        messages = render(role, path="p")
        assert detect_role(messages[0]["content"], messages[1]["content"]) == role
    assert detect_role("You are a strict verifier of reasoning.") == "verify"
    assert detect_role("Be helpful.", "Reasoning to grade:\n<<<\nx\n>>>") == "rank"
    assert detect_role("Be helpful.", "Question: what?") == "generate"


def test_prompt_sections_are_parsed() -> None:
    messages = render(
        "refine",
        path="line one\n>>> not the end\nFinal answer: B",
        answer="C",
        errors=["first error", "second error"],
        context="Background text.",
    )
    parsed = parse_prompt(messages[1]["content"])
    assert parsed.question == QUESTION and parsed.options == OPTIONS and parsed.answer == "C"
    assert parsed.context == "Background text."
    assert parsed.path == "line one\n>>> not the end\nFinal answer: B"
    assert parsed.errors == ("first error", "second error")
    pubmed = parse_prompt(
        render("generate", options={"yes": "yes", "no": "no", "maybe": "maybe"})[1]["content"]
    )
    assert pubmed.options == {"yes": "yes", "no": "no", "maybe": "maybe"}


def test_parse_metrics_reads_prometheus_text() -> None:
    text = '# HELP x y\nreasonmed_sim_requests_total{outcome="ok"} 3\nreasonmed_sim_in_flight_time_avg 1.500000\n'
    assert parse_metrics(text) == {'requests_total{outcome="ok"}': 3.0, "in_flight_time_avg": 1.5}


# --------------------------------------------------------------------------- launcher and CLI


def test_launcher_reports_a_simulator_that_cannot_start() -> None:
    with pytest.raises(SimServerError, match="exited during start-up") as info:
        SimServer(faults={"teapot": 0.5}).start()
    assert "teapot" in str(info.value)  # the process's stderr tail explains why


def test_cli_registers_sim_server_and_labels_it() -> None:
    from reasonmed.cli import app

    result = CliRunner().invoke(app, ["sim-server", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert (
        "SIMULATION" in result.output
        and "--fault-rate" in result.output
        and "--questions-db" in result.output
    )
