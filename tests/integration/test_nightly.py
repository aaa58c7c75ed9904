"""Nightly growth: the one-night-at-a-time guard, the budget, claim priority, S3 input, and a night that
dies being resumed by the next one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from reasonmed.db import claims_repo, nightly_repo, runs_repo
from reasonmed.db.engine import get_engine, make_engine
from reasonmed.db.models import LLMCall, PipelineRun, Question, QuestionOutcome, ReasoningPath
from reasonmed.ingest.service import ingest_file
from reasonmed.nightly import guard
from reasonmed.sim.launcher import SimServer
from tests.fixtures_ops import PYTHON, base_env, stop_process, write_medqa, write_pubmedqa
from tests.fixtures_pipeline import PUBMEDQA_TEST_IDS, write_sim_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the settings at a database for one test, and put them back afterwards."""

    def use(url: str, **settings: str) -> None:
        monkeypatch.setenv("REASONMED_DATABASE_URL", url)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)

    yield use


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _outcomes(engine: Any) -> dict[int, str]:
    with engine.connect() as c:
        return dict(c.execute(select(QuestionOutcome.question_id, QuestionOutcome.status)).all())


def _final(engine: Any) -> set[int]:
    return {q for q, s in _outcomes(engine).items() if s in ("accepted", "rejected")}


# --------------------------------------------------------------------------- claim priority


def test_round_robin_claims_alternate_sources_and_fifo_takes_lowest_ids(engine: Any, tmp_path: Path) -> None:
    ingest_file(engine, write_pubmedqa(tmp_path / "pq.json", 8), "pubmedqa")
    ingest_file(engine, write_medqa(tmp_path / "mq.jsonl", 3), "medqa")
    with engine.connect() as c:
        source = dict(c.execute(select(Question.id, Question.source)).all())

    fifo = claims_repo.claim_questions(engine, worker="w-fifo", limit=4, lease_s=60, priority="fifo")
    assert fifo == sorted(source)[:4] and {source[i] for i in fifo} == {"pubmedqa"}
    claims_repo.release_claims(engine, worker="w-fifo", question_ids=fifo)

    rr = claims_repo.claim_questions(engine, worker="w-rr", limit=4, lease_s=60, priority="round-robin")
    assert sorted(source[i] for i in rr) == ["medqa", "medqa", "pubmedqa", "pubmedqa"]
    # the lowest ids of each source, and once a source runs dry the others fill the claim
    rest = claims_repo.claim_questions(engine, worker="w-rr2", limit=5, lease_s=60, priority="round-robin")
    assert sorted(source[i] for i in rest) == ["medqa"] + ["pubmedqa"] * 4
    assert not set(rr) & set(rest)
    with pytest.raises(ValueError, match="priority"):
        claims_repo.claim_questions(engine, worker="w", limit=1, lease_s=60, priority="random")


def test_claims_follow_outcomes_however_they_are_written(engine: Any, tmp_path: Path) -> None:
    """questions.finished_by (which the claim reads) is kept by the database from question_outcomes:
    plain SQL inserts, updates and deletes move it, a simulated finish is redone only by real models,
    and a question reopened to 'resolved' is claimable again."""
    ingest_file(engine, write_medqa(tmp_path / "mq.jsonl", 4), "medqa")
    with engine.connect() as c:
        q1, q2, q3, q4 = sorted(c.execute(select(Question.id)).scalars())

    def claim(real_models: bool) -> list[int]:
        ids = claims_repo.claim_questions(engine, worker="w", limit=10, lease_s=60, real_models=real_models)
        claims_repo.release_claims(engine, worker="w")
        return ids

    def sql(statement: str, **params: Any) -> None:
        with engine.begin() as c:
            c.execute(text(statement), params)

    add = (
        "INSERT INTO question_outcomes (question_id, status, n_paths, n_correct, n_accepted, updated_at, simulated) "
        "VALUES (:q, :status, 9, 9, 2, CURRENT_TIMESTAMP, :sim)"
    )
    sql(add, q=q1, status="accepted", sim=False)
    sql(add, q=q2, status="rejected", sim=True)
    sql(add, q=q3, status="resolved", sim=False)
    assert claim(real_models=False) == [q3, q4]
    assert claim(real_models=True) == [q2, q3, q4]
    assert claims_repo.count_pending(engine) == 2 and claims_repo.count_pending(engine, real_models=True) == 3

    sql("UPDATE question_outcomes SET status = 'accepted' WHERE question_id = :q", q=q3)
    sql("UPDATE question_outcomes SET simulated = :f WHERE question_id = :q", q=q2, f=False)
    assert claim(real_models=True) == [q4]
    sql("UPDATE question_outcomes SET status = 'resolved' WHERE question_id = :q", q=q1)
    sql("DELETE FROM question_outcomes WHERE question_id = :q", q=q3)
    assert claim(real_models=True) == [q1, q3, q4]


# --------------------------------------------------------------------------- the guard


def test_run_lock_admits_one_of_many_simultaneous_starts(engine: Any) -> None:
    def start(barrier: threading.Barrier, won: list[int | None]) -> None:
        barrier.wait()
        run_id, _holder = nightly_repo.acquire_run_lock(
            engine, kind="nightly", ttl_s=60, wait_s=30, parameters={}, prefect_flow_run_id=None
        )
        won.append(run_id)

    for _round in range(3):
        barrier = threading.Barrier(4)
        won: list[int | None] = []
        threads = [threading.Thread(target=start, args=(barrier, won)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in won if r is not None]
        assert len(won) == 4 and len(winners) == 1
        runs_repo.finish_run(engine, winners[0], status="completed", stats={})


def test_a_dead_runs_lock_expires_and_is_recorded_as_abandoned(engine: Any) -> None:
    run_id, _ = nightly_repo.acquire_run_lock(
        engine, kind="nightly", ttl_s=60, wait_s=30, parameters={}, prefect_flow_run_id="x"
    )
    assert run_id is not None
    refused, holder = nightly_repo.acquire_run_lock(
        engine, kind="nightly", ttl_s=60, wait_s=30, parameters={}, prefect_flow_run_id=None
    )
    assert refused is None and holder is not None and holder.run_id == run_id
    assert "already running" in guard.refusal_message("nightly growth", holder, 60)
    # the holder stops beating (it died): once the lease has passed, the next run proceeds
    with engine.begin() as c:
        c.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id)
            .values(heartbeat_at=runs_repo.now() - timedelta(seconds=61))
        )
    taken, _ = nightly_repo.acquire_run_lock(
        engine, kind="nightly", ttl_s=60, wait_s=30, parameters={}, prefect_flow_run_id=None
    )
    assert taken is not None and taken != run_id
    with engine.connect() as c:
        status, error = c.execute(
            select(PipelineRun.status, PipelineRun.error).where(PipelineRun.id == run_id)
        ).one()
    assert status == "failed" and "abandoned" in error


def test_heartbeat_keeps_a_live_lock(engine: Any) -> None:
    """Waits on the condition (the heartbeat renewed the lease past its first expiry), not on a clock, so
    a loaded machine that delays a beat makes the test slower, never red."""
    ttl = 3.0
    lock = guard.acquire(
        engine, kind="nightly", ttl_s=ttl, wait_s=30, parameters={}, prefect_flow_run_id=None
    )
    assert isinstance(lock, guard.RunLock)

    def beat() -> Any:
        with engine.connect() as c:
            return c.execute(
                select(PipelineRun.heartbeat_at).where(PipelineRun.id == lock.run_id)
            ).scalar_one()

    try:
        first = beat()
        deadline = time.monotonic() + 60
        while (beat() - first).total_seconds() <= ttl:  # renewed beyond the lease it started with
            assert time.monotonic() < deadline, "the heartbeat did not renew the lease within 60 s"
            time.sleep(0.05)
        assert not isinstance(
            guard.acquire(
                engine, kind="nightly", ttl_s=ttl, wait_s=30, parameters={}, prefect_flow_run_id=None
            ),
            guard.RunLock,
        )
    finally:
        lock.stop()
        runs_repo.finish_run(engine, lock.run_id, status="completed", stats={})
    assert not lock.lost


def test_a_second_nightly_run_is_refused_while_one_holds_the_lock(
    pg_url: str, prefect_harness: None, env: Any, tmp_path: Path
) -> None:
    from reasonmed.flows.nightly import nightly_growth

    env(pg_url)
    engine = get_engine(pg_url)
    write_pubmedqa(tmp_path / "in" / "pq.json", 5)
    holder = guard.acquire(
        engine, kind="nightly", ttl_s=600, wait_s=30, parameters={}, prefect_flow_run_id="another-run"
    )
    assert isinstance(holder, guard.RunLock)
    try:
        state = _run(
            nightly_growth(
                input_location=str(tmp_path / "in"), max_questions=5, export=False, return_state=True
            )
        )
        assert state.is_cancelled()
        assert "already running" in state.message and f"pipeline run {holder.run_id}" in state.message
        with engine.connect() as c:  # it did nothing: no ingest, no build
            assert c.execute(select(func.count()).select_from(Question)).scalar_one() == 0
            assert (
                c.execute(
                    select(func.count()).select_from(PipelineRun).where(PipelineRun.kind == "build")
                ).scalar_one()
                == 0
            )
    finally:
        holder.stop()
        runs_repo.finish_run(engine, holder.run_id, status="completed", stats={})


@contextmanager
def _key_kept_by_another_session(pg_url: str, *, deadline_s: float) -> Iterator[int]:
    """A second session (application ``key-squatter``) that takes the start key and sits idle, as an
    auditor's psql could: yields its pid. Ended at the deadline at the latest, so code that would wait for
    the key forever fails its assertions instead of hanging the suite."""
    u = make_url(pg_url)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    squatter = psycopg.connect(conninfo + " application_name=key-squatter", autocommit=True)
    pid = squatter.info.backend_pid
    squatter.execute("SELECT pg_advisory_lock(%s)", (nightly_repo.ADVISORY_KEY,))
    done = threading.Event()

    def end_at_deadline() -> None:
        if not done.wait(deadline_s):
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(%s)", (pid,))

    watchdog = threading.Thread(target=end_at_deadline)
    watchdog.start()
    try:
        yield pid
    finally:
        done.set()
        watchdog.join()
        squatter.close()


def test_a_session_keeping_the_start_key_is_named_once_the_wait_runs_out(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with _key_kept_by_another_session(pg_url, deadline_s=20) as pid:
            started = time.monotonic()
            with pytest.raises(nightly_repo.LockKeyHeld) as held:
                nightly_repo.acquire_run_lock(
                    engine, kind="nightly", ttl_s=60, wait_s=1, parameters={}, prefect_flow_run_id=None
                )
            waited = time.monotonic() - started
        assert 1 <= waited < 10  # ended by itself, well before the deadline ended the other session
        [session] = held.value.sessions
        assert (session.pid, session.user, session.application_name, session.state) == (
            pid,
            "postgres",
            "key-squatter",
            "idle",
        )
        assert session.connected_at is not None and session.state_since is not None
        message = guard.key_held_message("nightly growth", held.value)
        assert f"session pid {pid} (user 'postgres', application 'key-squatter'" in message
        assert "idle since 20" in message and "pg_terminate_backend" in message
        with engine.connect() as c:  # nothing was started
            assert c.execute(select(func.count()).select_from(PipelineRun)).scalar_one() == 0
        # the key is free again: the next start goes ahead at once
        run_id, _ = nightly_repo.acquire_run_lock(
            engine, kind="nightly", ttl_s=60, wait_s=1, parameters={}, prefect_flow_run_id=None
        )
        assert run_id is not None
    finally:
        engine.dispose()


def test_the_key_message_says_what_an_unprivileged_app_role_cannot_see() -> None:
    hidden = nightly_repo.KeySession(4242, "auditor\nfake line", "psql", None, None, None, None)
    message = guard.key_held_message("nightly growth", nightly_repo.LockKeyHeld((hidden,), 30))
    assert "session pid 4242 (user 'auditor\\nfake line', application 'psql'" in message
    assert "not visible to this role (grant it pg_read_all_stats)" in message and "\n" not in message
    assert "SELECT pg_terminate_backend(4242);" in message
    gone = guard.key_held_message("nightly growth", nightly_repo.LockKeyHeld((), 30))
    assert "released it since" in gone and "more than 30s" in gone


def test_a_nightly_run_whose_start_key_is_kept_ends_failed_in_time_naming_the_session(
    pg_url: str, prefect_harness: None, env: Any, tmp_path: Path
) -> None:
    from reasonmed.flows.nightly import nightly_growth

    env(pg_url, REASONMED_RUN_LOCK_WAIT_S="2")
    write_pubmedqa(tmp_path / "in" / "pq.json", 5)
    with _key_kept_by_another_session(pg_url, deadline_s=90) as pid:
        started = time.monotonic()
        state = _run(
            nightly_growth(
                input_location=str(tmp_path / "in"), max_questions=0, export=False, return_state=True
            )
        )
        took = time.monotonic() - started
    assert state.is_failed(), (state.type, state.message)
    assert took < 90  # it did not wait for the other session to go away
    assert "nightly growth did not start" in state.message and "more than 2s" in state.message
    assert f"session pid {pid} (user 'postgres', application 'key-squatter'" in state.message
    engine = get_engine(pg_url)
    with engine.connect() as c:  # it did nothing: no ingest, no run row
        assert c.execute(select(func.count()).select_from(Question)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(PipelineRun)).scalar_one() == 0


# --------------------------------------------------------------------------- budget


@pytest.fixture
def sim_pipeline(pg_url: str, tmp_path: Path) -> Iterator[tuple[SimServer, Path]]:
    with SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0) as sim:
        yield sim, write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)


def test_nightly_respects_the_question_budget_and_the_next_night_takes_the_next_questions(
    pg_url: str,
    prefect_harness: None,
    env: Any,
    tmp_path: Path,
    sim_pipeline: tuple[SimServer, Path],
) -> None:
    from reasonmed.flows.nightly import nightly_growth

    env(pg_url)
    engine = get_engine(pg_url)
    _sim, cfg = sim_pipeline
    folder = tmp_path / "in"
    write_pubmedqa(folder / "part1.json", 6)
    (folder / "notes.txt").write_text("not a question file")  # ignored: the pattern for pubmedqa is *.json
    (folder / "broken.json").write_text("[1, 2, 3]")  # matches, cannot be read: reported, the night goes on
    ids_file = folder / "test_ground_truth.json"
    ids_file.write_text(PUBMEDQA_TEST_IDS.read_text())

    night = {
        "input_location": str(folder),
        "source": "pubmedqa",
        "max_questions": 4,
        "config": str(cfg),
        "benchmark_test_ids": str(ids_file),
        "shard_size": 2,
        "questions_in_flight": 2,
        "export_out": str(tmp_path / "exports"),
        "export_formats": ["jsonl"],
    }
    night1 = _run(nightly_growth(**night))
    statuses = [f["status"] for f in night1["ingest"]]
    assert statuses[0].startswith("error: ") and statuses[1:] == ["new"] and night1["questions_ingested"] == 6
    assert night1["questions_processed"] == 4 and night1["questions_claimed"] == 4
    assert night1["questions_accepted"] + night1["questions_rejected"] == 4
    assert night1["samples_added"] >= 1 and night1["tokens"]["total"] > 0
    assert night1["totals"]["pending"] == 2
    done1 = _final(engine)

    write_pubmedqa(folder / "part2.json", 3, skip=6)  # new overnight upload
    night2 = _run(nightly_growth(**night))
    assert [f["status"] for f in night2["ingest"]][1:] == ["already ingested", "new"] and night2[
        "questions_ingested"
    ] == 3
    assert night2["questions_processed"] == 4
    done2 = _final(engine)
    assert len(done2) == 8 and done1 < done2
    with engine.connect() as c:
        kinds = c.execute(
            select(PipelineRun.kind, PipelineRun.status).where(PipelineRun.kind == "nightly")
        ).all()
    assert kinds == [("nightly", "completed")] * 2
    # each night exports a new version holding everything accepted so far
    assert (night1["export_version"], night2["export_version"]) == (1, 2)
    assert night2["export"]["counts"]["ReasonMed"] == night2["totals"]["samples"]
    assert Path(night2["export"]["manifest_path"]).is_file()
    # the growth report is one keyed artifact with a version per night
    markdowns = _run(_artifacts("dataset-growth"))
    assert len(markdowns) == 2 and all("Dataset growth" in m and "Tier mix" in m for m in markdowns)


def test_a_night_that_adds_nothing_exports_no_version_and_runs_are_named_by_what_they_are(
    pg_url: str,
    prefect_harness: None,
    env: Any,
    tmp_path: Path,
    sim_pipeline: tuple[SimServer, Path],
) -> None:
    from datetime import UTC, datetime

    from reasonmed.db.models import DatasetVersion
    from reasonmed.flows.nightly import nightly_growth

    env(pg_url)
    engine = get_engine(pg_url)
    _sim, cfg = sim_pipeline
    ingest_file(engine, write_pubmedqa(tmp_path / "pq.json", 3), "pubmedqa")
    night = {
        "max_questions": 10,
        "config": str(cfg),
        "shard_size": 3,
        "questions_in_flight": 3,
        "export_out": str(tmp_path / "exports"),
        "export_formats": ["jsonl"],
    }
    first = _run(nightly_growth(**night))
    assert first["questions_processed"] == 3 and first["export_version"] == 1
    second = _run(nightly_growth(**night))  # nothing pending, nothing ingested: the dataset is as it was
    assert second["questions_processed"] == 0 and second["samples_added"] == 0
    assert second["export_version"] is None and second["export_skipped"]
    with engine.connect() as c:
        assert c.execute(select(DatasetVersion.version)).scalars().all() == [1]
        runs = c.execute(
            select(
                PipelineRun.id, PipelineRun.kind, PipelineRun.prefect_flow_run_id, PipelineRun.status
            ).order_by(PipelineRun.id)
        ).all()
    markdowns = _run(_artifacts("dataset-growth"))
    assert any("no new version: the night added no sample" in m for m in markdowns)

    # The runs' names say what they are: the night's date, the build's pipeline run id.
    assert [kind for _id, kind, _fr, _status in runs] == ["nightly", "build", "export", "nightly", "build"]
    assert {status for *_, status in runs} == {"completed"}
    named = [(run_id, kind, fr) for run_id, kind, fr, _s in runs if kind != "export"]
    names = _run(_flow_run_names([fr for *_, fr in named]))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert names == [
        f"nightly-{today}" if kind == "nightly" else f"build-run-{run_id}" for run_id, kind, _fr in named
    ]


async def _flow_run_names(flow_run_ids: list[str]) -> list[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [(await client.read_flow_run(run_id)).name for run_id in flow_run_ids]


async def _artifacts(key: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return [str(a.data) for a in found]


def test_token_budget_stops_claiming_new_shards(
    pg_url: str,
    prefect_harness: None,
    env: Any,
    tmp_path: Path,
    sim_pipeline: tuple[SimServer, Path],
) -> None:
    from reasonmed.flows.build import build_dataset

    env(pg_url)
    engine = get_engine(pg_url)
    ingest_file(engine, write_pubmedqa(tmp_path / "pq.json", 20), "pubmedqa")
    _sim, cfg = sim_pipeline
    # 3 in flight, shards of 3: two shard workers claim one shard each, finish, see the budget spent, stop.
    result = _run(build_dataset(config=str(cfg), shard_size=3, questions_in_flight=3, max_tokens=1))
    assert result["token_budget_reached"] is True
    assert result["claimed"] == 6 and result["done"] == 6 and result["shards"] == 2
    assert claims_repo.count_pending(engine) == 14
    # a budget not reached leaves the build to its question limit
    result = _run(
        build_dataset(config=str(cfg), shard_size=3, questions_in_flight=3, max_tokens=10**9, limit=4)
    )
    assert result["token_budget_reached"] is False and result["done"] == 4


# --------------------------------------------------------------------------- S3 input


def test_s3_input_is_ingested_once(pg_url: str, prefect_harness: None, env: Any, tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from reasonmed.flows.nightly import nightly_growth

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        env(pg_url, REASONMED_S3_ENDPOINT_URL=endpoint, **creds)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="questions")
        s3.upload_file(str(write_pubmedqa(tmp_path / "a.json", 5)), "questions", "incoming/pubmedqa/a.json")
        s3.put_object(
            Bucket="questions", Key="incoming/pubmedqa/ids.json", Body=PUBMEDQA_TEST_IDS.read_bytes()
        )
        s3.put_object(Bucket="questions", Key="elsewhere/b.json", Body=b"{}")

        kwargs = {
            "input_location": "s3://questions/incoming/pubmedqa",
            "max_questions": 0,
            "export": False,
            "benchmark_test_ids": "s3://questions/incoming/pubmedqa/ids.json",
        }
        first = _run(nightly_growth(**kwargs))
        assert [(f["file"], f["status"], f["inserted"]) for f in first["ingest"]] == [
            ("s3://questions/incoming/pubmedqa/a.json", "new", 5)
        ]
        second = _run(nightly_growth(**kwargs))
        assert [f["status"] for f in second["ingest"]] == ["already ingested"]
        assert second["totals"]["questions"] == 5
    finally:
        server.stop()


# --------------------------------------------------------------------------- a night that dies


_NIGHT = """
import asyncio, sys
from reasonmed.flows.nightly import nightly_growth
asyncio.run(nightly_growth(max_questions=int(sys.argv[1]), config=sys.argv[2], shard_size=3, questions_in_flight=3,
                           priority="fifo", export=False))
"""


def test_a_night_that_dies_is_resumed_by_the_next_without_repeating_work(
    pg_url: str,
    prefect_harness: None,
    env: Any,
    tmp_path: Path,
) -> None:
    """Kill a night mid-build: while it runs a second night is refused; after its leases expire the next
    night finishes what it left, and no question is generated twice (the simulator counts every call)."""
    import prefect.settings

    from reasonmed.flows.nightly import nightly_growth

    lease = "3"
    env(pg_url, REASONMED_CLAIM_LEASE_S=lease)
    engine = make_engine(pg_url)
    ingest_file(engine, write_pubmedqa(tmp_path / "pq.json", 30), "pubmedqa")
    # 300 ms a call: 4 waves of 3 questions take several seconds, so the kill lands mid-night; while the
    # second night is tried the simulator holds every request (a quiet machine once finished the first
    # night before the second reached its lock). The night's log
    # goes to a file: Prefect logs every task run, and an unread pipe would fill and stall the night.
    night_log = tmp_path / "night.log"
    with (
        SimServer(questions_db=pg_url, base_latency_ms=300, per_token_ms=0) as sim,
        night_log.open("wb") as log_out,
    ):
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        proc = subprocess.Popen(
            [PYTHON, "-c", _NIGHT, "12", str(cfg)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log_out,
            env=base_env(
                PREFECT_API_URL=prefect.settings.PREFECT_API_URL.value(),
                REASONMED_DATABASE_URL=pg_url,
                REASONMED_CLAIM_LEASE_S=lease,
            ),
            start_new_session=True,
        )

        def wait_for(done: Any, what: str) -> None:
            deadline = time.monotonic() + 120
            while not done():
                assert proc.poll() is None, night_log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        def generating() -> bool:
            with engine.connect() as c:
                return c.execute(select(func.count()).select_from(ReasoningPath)).scalar_one() > 0

        try:
            # a manual run while the night is alive (it holds the lock and is generating) is refused
            wait_for(generating, "the first night never started generating")
            sim.pause()  # the engine stalls: the first night stays alive however fast this machine is
            try:
                state = _run(
                    nightly_growth(max_questions=12, config=str(cfg), export=False, return_state=True)
                )
            finally:
                sim.pause(False)
            assert proc.poll() is None, "the first night ended before the second was tried"
            assert state.is_cancelled() and "already running" in state.message
            wait_for(lambda: len(_final(engine)) >= 3, "the first night made no progress")
            os.killpg(proc.pid, signal.SIGKILL)  # the night dies mid-shard
            proc.wait(timeout=30)
        finally:
            stop_process(proc)
        done_by_dead_night = _final(engine)
        with engine.connect() as c:
            claimed = set(c.execute(select(Question.id).where(Question.claimed_by.is_not(None))).scalars())
            started = set(c.execute(select(ReasoningPath.question_id).distinct()).scalars())
        assert 3 <= len(done_by_dead_night) < 12 and claimed - done_by_dead_night, (
            "kill landed between shards"
        )
        half_done = started - done_by_dead_night

        with engine.connect() as c:
            gen_calls_dead = c.execute(
                select(func.count()).select_from(LLMCall).where(LLMCall.role == "generator")
            ).scalar_one()
        # Requests the dead night had in flight reached the simulator but were never stored: they are
        # missing work. From here on the simulator counts only what the next night asks for.
        sim.reset_metrics()
        time.sleep(float(lease) + 0.5)  # the dead night's lock and claims expire
        night = _run(
            nightly_growth(
                max_questions=12,
                config=str(cfg),
                shard_size=3,
                questions_in_flight=3,
                priority="fifo",
                export=False,
            )
        )
        metrics = sim.metrics()

    done = _final(engine)
    assert done_by_dead_night < done and half_done <= done  # the unfinished questions were finished
    assert night["questions_processed"] == 12
    assert len(done) == len(done_by_dead_night) + 12
    with engine.connect() as c:
        gen = dict(
            c.execute(
                select(ReasoningPath.question_id, func.count())
                .where(ReasoningPath.origin == "generated")
                .group_by(ReasoningPath.question_id)
            ).all()
        )
        gen_calls = c.execute(
            select(func.count()).select_from(LLMCall).where(LLMCall.role == "generator")
        ).scalar_one()
        nights = dict(
            c.execute(
                select(PipelineRun.status, func.count())
                .where(PipelineRun.kind == "nightly")
                .group_by(PipelineRun.status)
            ).all()
        )
        abandoned = c.execute(
            text("SELECT error FROM pipeline_runs WHERE kind = 'nightly' AND status = 'failed'")
        ).scalar_one()
    assert set(gen.values()) == {9}  # every started question has exactly one set of 9 generated paths
    # the next night asked only for the generation requests that had no stored call: nothing twice
    assert sum(gen.values()) == gen_calls
    assert metrics['requests_by_role_total{role="generate"}'] == gen_calls - gen_calls_dead > 0
    assert nights == {"failed": 1, "completed": 1} and "abandoned" in abandoned
    engine.dispose()


def test_a_night_with_hostile_inputs_reports_each_file_and_still_builds_and_exports(
    pg_url: str,
    prefect_harness: None,
    env: Any,
    tmp_path: Path,
    sim_pipeline: tuple[SimServer, Path],
) -> None:
    """Bad uploads are file outcomes in the night's report, never the night's end: it builds and exports."""
    import json as _json

    from reasonmed.flows.nightly import nightly_growth

    env(pg_url)
    _sim, cfg = sim_pipeline
    folder = tmp_path / "in"
    good = write_pubmedqa(folder / "a_good.json", 4)
    (folder / "b_not_an_object.json").write_text("[1, 2, 3]")
    (folder / "c_no_valid_record.json").write_text(
        _json.dumps({"1": {"QUESTION": "?"}, "2": {"QUESTION": 3}})
    )
    items = _json.loads(write_pubmedqa(tmp_path / "more.json", 2, skip=4).read_text())
    hostile = (
        "{"
        + ",".join(f'"{k}": {_json.dumps(v)}' for k, v in items.items())
        + ', "deep": '
        + "[" * 5000
        + "]" * 5000
    )
    (folder / "d_deep_then_truncated.json").write_text(hostile + ', "cut": {"QUESTION": "trunc')
    (tmp_path / "secret.json").write_text(good.read_text())
    os.symlink(tmp_path / "secret.json", folder / "e_link_out.json")

    night = _run(
        nightly_growth(
            input_location=str(folder),
            source="pubmedqa",
            max_questions=2,
            config=str(cfg),
            shard_size=2,
            questions_in_flight=2,
            export_out=str(tmp_path / "exports"),
            export_formats=["jsonl"],
        )
    )
    status = {Path(f["file"]).name: (f["status"], f["inserted"]) for f in night["ingest"]}
    assert status["a_good.json"] == ("new", 4)
    assert status["b_not_an_object.json"][0].startswith("error: expected one JSON object")
    assert status["c_no_valid_record.json"][0].startswith("error: no valid record")
    assert status["d_deep_then_truncated.json"] == ("new", 2)  # its good records kept, the rest reported
    assert status["e_link_out.json"] == ("error: links outside the input folder; not read", 0)
    assert night["questions_processed"] == 2 and night["export_version"] == 1
    assert Path(night["export"]["manifest_path"]).is_file()
