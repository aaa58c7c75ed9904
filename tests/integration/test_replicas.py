"""A replicated endpoint: each question's requests stay on one replica (its prefix cache is hit), a replica
that dies takes only its own questions elsewhere, and the dataset is the one a single server would build.

Three simulators are the replicas; each lists the questions it answered (``/admin/questions``), which is
the evidence of where every request went. The expected outcomes come from the simulator's own rules
(``tests/sim_expectations.py``), not from the routing under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from reasonmed.config import EndpointConfig, load_pipeline_config
from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.preflight import EndpointUnavailable, check_endpoints, require_available
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import run_build, use_database, write_sim_config
from tests.integration.test_pipeline_resilience import _training_subset
from tests.sim_expectations import expected_for

QUESTIONS = 30
ACCURACY = 0.6  # the simulator's default accuracy (SimSettings.default_accuracy)
REFINE_ACCURACY = 0.9


def _replicated_config(path: Path, servers: list[SimServer], **endpoint: Any) -> Path:
    """The simulator pipeline with every endpoint served by all ``servers`` as replicas."""
    write_sim_config(path, servers[0].base_url, max_in_flight=8)
    data = yaml.safe_load(path.read_text())
    for ep in data["endpoints"].values():
        del ep["base_url"]
        ep["replicas"] = [s.base_url for s in servers]
        ep.update(breaker_window_s=0.2, breaker_min_failures=3, **endpoint)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _assert_dataset_as_one_server_builds_it(pg_url: str, cfg: Path) -> None:
    engine = get_engine(pg_url)
    pipeline = load_pipeline_config(cfg)
    with engine.connect() as c:
        outcomes = c.execute(text("select question_id, status from question_outcomes")).all()
        failures = c.execute(text("select count(*) from question_failures")).scalar_one()
    assert len(outcomes) == QUESTIONS and failures == 0
    for qid, status in outcomes:
        expected = expected_for(engine, pipeline, qid, accuracy=ACCURACY, refine_accuracy=REFINE_ACCURACY)
        assert status == expected.status, qid


@pytest.fixture
def replicated(
    pg_url: str, prefect_harness: None, sim_factory: Callable[..., SimServer], tmp_path: Path
) -> tuple[list[SimServer], Path]:
    """30 training questions in a fresh database, three simulators, and a pipeline file that has every
    endpoint served by all three as replicas."""
    use_database(pg_url)
    ingest_file(get_engine(pg_url), _training_subset(tmp_path / "q.json", QUESTIONS), "pubmedqa")
    servers = [sim_factory(questions_db=pg_url, base_latency_ms=2) for _ in range(3)]
    return servers, _replicated_config(tmp_path / "pipeline.yaml", servers)


def test_each_question_stays_on_one_replica(pg_url: str, replicated: tuple[list[SimServer], Path]) -> None:
    servers, cfg = replicated

    result = run_build(config=str(cfg), shard_size=QUESTIONS)

    assert result["done"] == QUESTIONS and result["failed"] == 0
    seen = [s.questions() for s in servers]
    keys = [set(q) for q in seen]
    # every question on exactly one replica, and all three used (30 questions: P(one idle) ~ 1e-5)
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == QUESTIONS
    assert all(keys)
    # every request a server answered belongs to one of its own questions: the requests add up
    answered = [int(s.metrics()['requests_total{outcome="ok"}']) for s in servers]
    assert [sum(q.values()) for q in seen] == answered
    # each question's first request misses the cache and every later one hits it
    hits = 0.0
    for s, q in zip(servers, seen, strict=True):
        m = s.metrics()
        assert m["prefix_cache_hits_total"] > 0
        assert sum(q.values()) > len(q)  # a question asks more than once: generation, verification, summaries
        hits += m["prefix_cache_hits_total"]
    # the servers' reports of their cache hits reach the call records, token for token
    with get_engine(pg_url).connect() as c:
        stored = c.execute(text("select coalesce(sum(cached_prompt_tokens), 0) from llm_calls")).scalar_one()
    assert stored == hits
    _assert_dataset_as_one_server_builds_it(pg_url, cfg)


def test_a_replica_that_dies_moves_only_its_questions(
    pg_url: str, replicated: tuple[list[SimServer], Path]
) -> None:
    servers, cfg = replicated
    victim = servers[2]
    killed: list[dict[str, int]] = []

    def kill_after_some_requests() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if victim.metrics()['requests_total{outcome="ok"}'] >= 10:
                killed.append(victim.questions())
                victim.stop()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_some_requests, daemon=True)
    killer.start()
    result = run_build(config=str(cfg), shard_size=QUESTIONS)
    killer.join(timeout=5)

    assert killed, "the victim replica never served 10 requests"
    assert result["done"] == QUESTIONS and result["failed"] == 0
    survivors = [set(s.questions()) for s in servers[:2]]
    assert not survivors[0] & survivors[1]  # the survivors' own questions never moved between them
    assert len(survivors[0] | survivors[1]) == QUESTIONS  # the victim's questions all finished elsewhere
    _assert_dataset_as_one_server_builds_it(pg_url, cfg)


async def test_preflight_leaves_out_an_unreachable_replica(sim: SimServer) -> None:
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    ep = EndpointConfig(model="sim/m", replicas=[sim.base_url, dead], timeout_s=5.0)

    checks = await check_endpoints({"gen": ep}, {}, timeout_s=5.0)

    assert [(c.replica, c.ok, c.left_out) for c in checks] == [(0, True, False), (1, True, True)]
    assert "endpoint gen[1] (http://127.0.0.1:9/v1/models): LEFT OUT: unreachable" in checks[1].line()
    require_available(checks)  # one replica serves: the run goes on


async def test_preflight_fails_when_no_replica_serves() -> None:
    ep = EndpointConfig(model="sim/m", replicas=["http://127.0.0.1:9/v1", "http://127.0.0.1:9/x/v1"])

    checks = await check_endpoints({"gen": ep}, {}, timeout_s=5.0)

    assert [(c.replica, c.ok, c.left_out) for c in checks] == [(0, False, False), (1, False, False)]
    try:
        require_available(checks)
    except EndpointUnavailable as exc:
        assert "endpoint gen[0]" in str(exc) and "endpoint gen[1]" in str(exc)
    else:
        raise AssertionError("no replica serves, yet the preflight passed")
