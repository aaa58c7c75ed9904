"""A killed run resumes without redoing or duplicating work; faulty endpoints do not change the dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import prefect.settings
from sqlalchemy import text

from reasonmed.config import load_pipeline_config
from reasonmed.db import migrate
from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import (
    PUBMEDQA_FILE,
    PUBMEDQA_TEST_IDS,
    run_build,
    use_database,
    write_sim_config,
)
from tests.sim_expectations import expected_for

REPO = Path(__file__).resolve().parents[2]


def _training_subset(path: Path, n: int, skip: int = 0) -> Path:
    """The first ``n`` PubMedQA training items (never its test split) as a PQA-L file of their own."""
    data = json.loads(PUBMEDQA_FILE.read_text())
    test_ids = set(json.loads(PUBMEDQA_TEST_IDS.read_text()))
    train = [k for k in data if k not in test_ids][skip : skip + n]
    path.write_text(json.dumps({k: data[k] for k in train}))
    return path


def _count(engine, sql: str) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


def _dataset(engine) -> set[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    """What the exports are made of: accepted path text and summary, keyed by question content."""
    with engine.connect() as c:
        return set(
            c.execute(
                text("""
            select q.content_hash, p.path_key, p.clean_text, s.text from accepted_paths a
            join question_outcomes o on o.question_id = a.question_id and o.status = 'accepted'
            join questions q on q.id = a.question_id join reasoning_paths p on p.id = a.path_id
            join summaries s on s.path_id = p.id""")
            ).all()
        )


def test_killed_run_resumes_with_only_the_missing_calls(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    use_database(pg_url)
    engine = get_engine(pg_url)
    ingest_file(engine, _training_subset(tmp_path / "subset.json", 40), "pubmedqa")
    with SimServer(questions_db=pg_url, base_latency_ms=30, per_token_ms=0, default_accuracy=0.5) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url, max_in_flight=8)
        env = {
            **os.environ,
            "REASONMED_DATABASE_URL": pg_url,
            "REASONMED_CLAIM_LEASE_S": "2",
            "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
        }
        script = (
            "import asyncio\nfrom reasonmed.flows.build import build_dataset\n"
            f"asyncio.run(build_dataset(config={str(cfg)!r}, shard_size=20, questions_in_flight=8))\n"
        )
        log = (tmp_path / "killed.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 180
            while _count(engine, "select count(*) from llm_calls") < 250:
                assert proc.poll() is None, (
                    "the build ended before it could be killed: "
                    + (tmp_path / "killed.log").read_text()[-2000:]
                )
                assert time.monotonic() < deadline, "the build made no progress"
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        calls_at_kill = _count(engine, "select count(*) from llm_calls")
        finished_at_kill = _count(
            engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')"
        )
        assert finished_at_kill < 40  # killed mid-way, for real
        time.sleep(2.5)  # the dead worker's two-second lease lapses
        sim.reset_metrics()
        os.environ["REASONMED_CLAIM_LEASE_S"] = "2"
        try:
            use_database(pg_url)
            result = run_build(config=str(cfg), shard_size=20, questions_in_flight=8)
        finally:
            os.environ.pop("REASONMED_CLAIM_LEASE_S", None)
            use_database(pg_url)
        rerun_requests = sim.metrics()['requests_total{outcome="ok"}']

    assert result["failed"] == 0 and result["done"] == 40 - finished_at_kill
    final_calls = _count(engine, "select count(*) from llm_calls")
    # Every request of the rerun made a new call row: nothing that had finished was asked again.
    assert rerun_requests == final_calls - calls_at_kill
    assert (
        _count(engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')")
        == 40
    )
    # No duplicates: 9 generated paths and one verdict per path, per question.
    assert (
        _count(
            engine,
            """select count(*) from (select question_id from reasoning_paths where origin = 'generated'
                             group by question_id having count(*) <> 9) bad""",
        )
        == 0
    )
    assert _count(engine, "select count(*) from verdicts") == _count(
        engine, "select count(*) from reasoning_paths"
    )
    assert _count(engine, "select count(*) from summaries") == _count(
        engine,
        """select count(*) from accepted_paths a
        join question_outcomes o on o.question_id = a.question_id where o.status = 'accepted'""",
    )
    # And the outcome is exactly what an uninterrupted run gives.
    pipeline = load_pipeline_config(cfg)
    with engine.connect() as c:
        ids = c.execute(text("select question_id, status from question_outcomes")).all()
    for qid, status in ids:
        assert expected_for(engine, pipeline, qid, accuracy=0.5, refine_accuracy=0.9).status == status


def _fresh_db(url: str, subset: Path) -> None:
    migrate.upgrade(url)
    use_database(url)
    ingest_file(get_engine(url), subset, "pubmedqa")


def test_ten_percent_faults_of_every_kind_leave_the_dataset_unchanged(
    pg_url: str,
    empty_pg_url: str,
    prefect_harness: None,
    tmp_path: Path,
) -> None:
    subset = _training_subset(tmp_path / "subset.json", 30, skip=100)
    overrides = {"output_retries": 4}
    _fresh_db(pg_url, subset)
    with SimServer(questions_db=pg_url, base_latency_ms=2, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "clean.yaml", sim.base_url, **overrides)
        clean = run_build(config=str(cfg), shard_size=30)
    _fresh_db(empty_pg_url, subset)
    with SimServer(
        questions_db=empty_pg_url,
        base_latency_ms=2,
        per_token_ms=0,
        fault_rate=0.10,
        fault_seed=7,
        retry_after=0.2,
        hang_seconds=30,
    ) as sim:
        cfg = write_sim_config(tmp_path / "faulty.yaml", sim.base_url, timeout_s=1.0, **overrides)
        faulty = run_build(config=str(cfg), shard_size=30)
        metrics = sim.metrics()
    for kind in ("429", "500", "hang", "drop", "malformed", "truncate", "noanswer"):
        assert metrics[f'requests_total{{outcome="{kind}"}}'] > 0, f"no {kind} fault was injected"
    assert clean["failed"] == 0 and faulty["failed"] == 0
    a, b = get_engine(pg_url), get_engine(empty_pg_url)
    clean_rows, faulty_rows = _dataset(a), _dataset(b)
    assert len(clean_rows) > 30
    assert faulty_rows == clean_rows
    # The faults were absorbed by retries, which the call log records.
    assert _count(b, "select sum(attempts) from llm_calls") > _count(b, "select count(*) from llm_calls")
    get_engine(empty_pg_url).dispose()


def test_tasks_retry_database_blips_only(prefect_harness: None) -> None:
    """The pipeline's task options under Prefect: a lost database connection is retried; a stage left
    incomplete by failed LLM requests is not (the HTTP client already retried them, and the question's
    attempt budget owns what is left), and neither is a programming or data error."""
    import asyncio

    from prefect import flow, task
    from sqlalchemy.exc import OperationalError

    from reasonmed.pipeline.failures import StageIncomplete
    from reasonmed.tasks.pipeline import _TASK_OPTIONS

    attempts: dict[str, int] = {}

    @task(**{**_TASK_OPTIONS, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    async def flaky(kind: str) -> str:
        attempts[kind] = attempts.get(kind, 0) + 1
        if kind == "database" and attempts[kind] < 3:
            raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
        if kind == "llm":
            raise StageIncomplete("generation of question 1: 2 request(s) failed", error_kinds=["timeout"])
        if kind == "bug":
            raise ValueError("a bug, not a blip")
        return "done"

    @flow
    async def run(kind: str) -> str:
        return (await flaky(kind, return_state=True)).type.value

    assert asyncio.run(run("database")) == "COMPLETED" and attempts["database"] == 3
    assert asyncio.run(run("llm")) == "FAILED" and attempts["llm"] == 1
    assert asyncio.run(run("bug")) == "FAILED" and attempts["bug"] == 1
