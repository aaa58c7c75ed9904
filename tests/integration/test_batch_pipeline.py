"""Endpoints with ``mode: batch`` end to end: the build flow, the simulator's Batch API over HTTP, Postgres.

The hosted roles of the paper's profile (refiner, regenerator, summariser) go through batches; the open
models stay interactive. Expected values come from outside the batch code: the same questions built with
every endpoint interactive (the simulator answers a request's body the same either way), the simulator's
own request counts, and the prices in the pipeline file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from reasonmed.config import temporary_settings
from reasonmed.db import export_repo
from reasonmed.db.engine import get_engine
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import BuiltDatabase, ingest_pubmedqa, use_database, write_sim_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

HOSTED = ("sim-refiner", "sim-regenerator", "sim-summarizer")
HOSTED_MODELS = {
    "refiner": "sim/refiner-gpt-4o-class",
    "regenerator": "sim/regenerator-o1-mini-class",
    "summarizer": "sim/summarizer-gpt-4o-mini-class",
}
PRICES = {"price_input_per_mtok": 2.5, "price_output_per_mtok": 10.0}
QUESTIONS = 50
SIM = {"base_latency_ms": 1, "per_token_ms": 0, "default_accuracy": 0.4, "refine_accuracy": 0.55}


def _config(path: Path, sim_url: str, *, batch: bool) -> Path:
    write_sim_config(path, sim_url)
    data = yaml.safe_load(path.read_text())
    for name in HOSTED:
        data["endpoints"][name].update(PRICES)
        if batch:
            data["endpoints"][name]["mode"] = "batch"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_build(**params: Any) -> dict[str, Any]:
    """The build's result also when it ended Failed (questions failed in it): ``result["outcome"]`` says how."""
    from reasonmed.flows.build import build_dataset, build_result

    async def go() -> dict[str, Any]:
        return await build_result(await build_dataset(**params, return_state=True))

    return asyncio.run(go())


def _accepted(url: str) -> set[tuple[Any, ...]]:
    rows = [
        r
        for chunk in export_repo.stream_accepted_rows(get_engine(url), include_simulated=True)
        for r in chunk
    ]
    cols = export_repo.ROW_COLUMNS
    keep = ("source_id", "rank", "model", "temperature", "origin", "cot", "summary")
    return {tuple(dict(zip(cols, r, strict=True))[k] for k in keep) for r in rows}


def _scalar(url: str, sql: str) -> Any:
    with get_engine(url).connect() as c:
        return c.execute(text(sql)).scalar_one()


def _metric(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[str]:
    old = os.environ.get("REASONMED_DATABASE_URL")
    use_database(pg_url)
    ingest_pubmedqa(pg_url)
    yield pg_url
    if old is None:
        os.environ.pop("REASONMED_DATABASE_URL", None)
    else:
        os.environ["REASONMED_DATABASE_URL"] = old


def test_batch_mode_accepts_what_interactive_mode_accepts_at_half_the_price(
    fresh_pg: str, built_pg_db: BuiltDatabase, tmp_path: Path
) -> None:
    """The reference is the suite's interactive build (``built_pg_db``: the same questions, pipeline and
    simulated models, every endpoint interactive); its stored calls give the requests and tokens to expect."""
    use_database(fresh_pg)
    with SimServer(questions_db=fresh_pg, **SIM) as sim:
        cfg = str(_config(tmp_path / "b.yaml", sim.base_url, batch=True))
        first = run_build(limit=QUESTIONS, config=cfg, batch_wait_s=0)
        # Run 1 submits and ends: its questions wait, nothing failed, nothing was set aside.
        out = first["outcome"]
        assert out["status"] == "done" and out["failed"] == 0 and out["set_aside"] == 0
        assert out["waiting"] > 0 and out["open_batches"] > 0
        assert _scalar(fresh_pg, "select count(*) from llm_calls where error_kind = 'batch_pending'") == 0
        with temporary_settings(batch_poll_s=0.2):
            second = run_build(limit=QUESTIONS, config=cfg, batch_wait_s=600)
        batch = sim.metrics()
    out = second["outcome"]
    assert out["status"] == "done" and out["waiting"] == 0 and out["open_batches"] == 0, out
    assert _finished(fresh_pg) == QUESTIONS
    with get_engine(fresh_pg).connect() as c:
        done = sorted(
            c.execute(
                text("select q.source_id from questions q join question_outcomes o on o.question_id = q.id")
            ).scalars()
        )
    expected = {row for row in _accepted(built_pg_db.url) if row[0] in set(done)}
    assert expected, "the reference accepted nothing of these questions: the comparison would prove nothing"
    assert _accepted(fresh_pg) == expected

    # Requests per mode: the reference's hosted calls (their attempts, re-asks included) became batch lines.
    in_done = "q.source_id in (" + ", ".join(f"'{d}'" for d in done) + ")"
    for role, model in HOSTED_MODELS.items():
        sent = _scalar(
            built_pg_db.url,
            f"select coalesce(sum(l.attempts), 0) from llm_calls l join questions q on q.id = l.question_id "
            f"where l.role = '{role}' and {in_done}",
        )
        assert _metric(batch, f'requests_by_model_total{{model="{model}"}}') == 0
        assert _metric(batch, f'batch_lines_by_model_total{{model="{model}"}}') == sent
    lines = _metric(batch, "batch_lines_total{")
    assert lines > 0
    assert lines == _scalar(fresh_pg, "select count(*) from batch_requests")
    assert lines == _scalar(fresh_pg, "select count(distinct custom_id) from batch_requests")
    print(
        f"\nbatch mode: {_metric(batch, 'requests_total{'):.0f} interactive requests + {lines:.0f} batch lines"
    )

    # Cost in the audit: the reference's hosted tokens at the pipeline file's prices, halved.
    p_tok, c_tok = (
        float(
            _scalar(
                built_pg_db.url,
                f"select coalesce(sum(l.{col}), 0) from llm_calls l join questions q on q.id = l.question_id "
                f"where l.role in ('refiner', 'regenerator', 'summarizer') and {in_done}",
            )
        )
        for col in ("prompt_tokens", "completion_tokens")
    )
    interactive = (p_tok * PRICES["price_input_per_mtok"] + c_tok * PRICES["price_output_per_mtok"]) / 1e6
    hosted = _scalar(
        fresh_pg,
        "select sum(cost_usd) from audit_token_usage where stage in ('refiner', 'regenerator', 'summarizer')",
    )
    assert interactive > 0 and float(hosted) == pytest.approx(interactive / 2, rel=1e-9)
    assert float(_scalar(fresh_pg, "select sum(cost_usd) from audit_batches")) == pytest.approx(
        float(hosted), rel=1e-9
    )
    assert _scalar(fresh_pg, "select count(*) from llm_calls where batch_id is not null") > 0


REPO = Path(__file__).resolve().parents[2]


def _build_process(url: str, log: Path, **params: Any) -> subprocess.Popen[bytes]:
    """A build in a process of its own (a worker that can be killed), on ``url``, with these flow params."""
    import prefect.settings

    env = {
        **os.environ,
        "REASONMED_DATABASE_URL": url,
        "REASONMED_BATCH_POLL_S": "0.2",
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
    }
    script = f"import asyncio\nfrom reasonmed.flows.build import build_dataset\nasyncio.run(build_dataset(**{params!r}))\n"
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def _finished(url: str) -> int:
    return int(
        _scalar(url, "select count(*) from question_outcomes where status in ('accepted', 'rejected')")
    )


def _no_request_sent_twice(url: str, metrics: dict[str, float]) -> None:
    """Every (request, attempt) went out in exactly one batch line, counted at the simulator."""
    lines = _metric(metrics, "batch_lines_total{") + _metric(metrics, "batch_lines_expired_total")
    assert lines == _scalar(url, "select count(*) from batch_requests where batch_id is not null")
    assert (
        _scalar(
            url,
            "select count(*) from (select custom_id, attempt from batch_requests group by 1, 2 having count(*) > 1) d",
        )
        == 0
    )


def test_an_expired_batch_and_failed_lines_are_retried_within_the_attempt_budget(
    fresh_pg: str, tmp_path: Path
) -> None:
    # The first run's batches wait an hour, so they are surely open when the test expires them (a 1 s wait
    # was over before a loaded machine got there); the batches after them wait 1 s.
    with SimServer(questions_db=fresh_pg, **{**SIM, "batch_delay_s": 3600.0}) as sim:
        cfg = str(_config(tmp_path / "b.yaml", sim.base_url, batch=True))
        first = run_build(limit=10, config=cfg, batch_wait_s=0)
        assert first["outcome"]["open_batches"] > 0
        sim.set_batch_delay(1.0)
        # The API lets every open batch run out of time; and the summariser's lines fail from now on.
        assert sim.expire_batches("all")
        sim.set_faults("summarize:*=500")
        with temporary_settings(batch_poll_s=0.2):
            second = run_build(limit=10, config=cfg, batch_wait_s=600)
            # Expired requests failed their questions once (a timeout): tried again by the next run.
            assert second["outcome"]["failed"] > 0 and second["outcome"]["set_aside"] == 0
            expired = _scalar(fresh_pg, "select count(*) from batch_requests where error_kind = 'timeout'")
            assert expired > 0
            # The expired requests go out again (attempt 2); summaries still fail.
            third = run_build(limit=10, config=cfg, batch_wait_s=600)
            assert third["outcome"]["failed"] > 0
            assert (
                _scalar(fresh_pg, "select count(*) from batch_requests where error_kind = 'server_error'") > 0
            )
            sim.set_faults()
            fourth = run_build(limit=10, config=cfg, batch_wait_s=600)
        metrics = sim.metrics()
    assert fourth["outcome"]["status"] == "done" and _finished(fresh_pg) == 10, fourth["outcome"]
    assert _metric(metrics, 'batch_lines_total{outcome="500"}') > 0
    # Each expired or failed request was sent again under its next attempt, once.
    unretried = """select count(*) from batch_requests f where f.status = 'failed' and not exists
                   (select 1 from batch_requests n where n.custom_id = f.custom_id and n.attempt = f.attempt + 1)"""
    assert _scalar(fresh_pg, unretried) == 0
    assert _scalar(fresh_pg, "select count(*) from batch_requests where attempt = 2") >= expired
    # A failure cost its question one attempt per stage, never more than the budget.
    assert _scalar(fresh_pg, "select max(failures) from question_failures") <= 2
    assert _scalar(fresh_pg, "select count(*) from question_failures where set_aside_at is not null") == 0
    _no_request_sent_twice(fresh_pg, metrics)


def test_a_run_killed_after_submitting_is_collected_by_the_next_and_nothing_is_sent_twice(
    fresh_pg: str, tmp_path: Path
) -> None:
    engine = get_engine(fresh_pg)
    with SimServer(questions_db=fresh_pg, **{**SIM, "batch_delay_s": 3.0}) as sim:
        cfg = str(_config(tmp_path / "b.yaml", sim.base_url, batch=True))
        proc = _build_process(fresh_pg, tmp_path / "killed.log", config=cfg, limit=20, batch_wait_s=600)
        try:
            deadline = time.monotonic() + 180
            while _metric(sim.metrics(), "batches_created_total") < 1:
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "no batch was submitted"
                time.sleep(0.1)
            proc.send_signal(signal.SIGKILL)  # while its batch runs (3 s)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        with engine.connect() as c:
            open_at_kill = c.execute(
                text("select count(*) from llm_batches where collected_at is null")
            ).scalar_one()
        assert open_at_kill >= 1
        with temporary_settings(batch_poll_s=0.2):
            result = run_build(limit=20, config=cfg, batch_wait_s=600)
        metrics = sim.metrics()
    assert result["outcome"]["status"] == "done", result["outcome"]
    assert _finished(fresh_pg) == 20
    assert _scalar(fresh_pg, "select count(*) from llm_batches where collected_at is null") == 0
    assert _scalar(fresh_pg, "select count(*) from batch_requests where attempt > 1") == 0
    _no_request_sent_twice(fresh_pg, metrics)


def test_two_workers_never_send_a_request_twice_nor_take_each_others_waiting_questions(
    fresh_pg: str, tmp_path: Path
) -> None:
    """Two workers at once: each holds the claims of the questions that wait on its batches, so the other never
    takes them and two runs limited to 15 questions each finish 30 between them; no request goes out twice."""
    with SimServer(questions_db=fresh_pg, **{**SIM, "batch_delay_s": 0.5}) as sim:
        cfg = str(_config(tmp_path / "b.yaml", sim.base_url, batch=True))
        params = {"config": cfg, "limit": 15, "shard_size": 5, "questions_in_flight": 5, "batch_wait_s": 120}
        procs = [_build_process(fresh_pg, tmp_path / f"w{i}.log", **params) for i in range(2)]
        try:
            for p in procs:
                p.wait(timeout=300)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        metrics = sim.metrics()
    logs = [(tmp_path / f"w{i}.log").read_text()[-1500:] for i in range(2)]
    assert _finished(fresh_pg) == 30, logs
    assert _scalar(fresh_pg, "select count(distinct worker) from llm_batches") == 2, logs
    # Each finished question was worked on by one run only.
    assert (
        _scalar(
            fresh_pg,
            "select count(*) from (select question_id from llm_calls group by question_id having count(distinct run_id) > 1) d",
        )
        == 0
    )
    _no_request_sent_twice(fresh_pg, metrics)
