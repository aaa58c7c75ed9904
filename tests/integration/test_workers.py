"""Scaling out: several worker processes share one pending set in one Postgres database (and one Prefect
server) without ever processing a question twice, and a dead worker's questions come back when its
lease expires."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from reasonmed.db import claims_repo
from reasonmed.db.engine import make_engine
from reasonmed.db.models import LLMCall, Question, QuestionOutcome, ReasoningPath, Verdict
from reasonmed.ingest.service import ingest_file
from reasonmed.sim.launcher import SimServer
from tests.fixtures_ops import PYTHON, PrefectServer, stop_process, write_pubmedqa
from tests.fixtures_pipeline import write_sim_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# One build worker: records every claim it gets (a line of ids per claim) so the test can check that
# the claims of all workers partition the pending set.
_WORKER = """
import asyncio, json, sys
from reasonmed.db import claims_repo

claims_file, config, worker_id = sys.argv[1:4]
_claim = claims_repo.claim_questions

def recording_claim(*args, **kwargs):
    ids = _claim(*args, **kwargs)
    with open(claims_file, "a") as f:
        f.write(json.dumps(ids) + "\\n")
    return ids

claims_repo.claim_questions = recording_claim
from reasonmed.flows.build import build_dataset

result = asyncio.run(build_dataset(config=config, shard_size=3, questions_in_flight=3, worker_id=worker_id))
print("RESULT " + json.dumps({k: result[k] for k in ("run_id", "claimed", "done", "failed")}), flush=True)
"""


@pytest.fixture
def pending(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Engine, list[int]]]:
    engine = make_engine(pg_url)
    ingest_file(engine, write_pubmedqa(tmp_path / "pq.json", 24), "pubmedqa")
    with engine.connect() as c:
        ids = sorted(c.execute(select(Question.id)).scalars())
    yield pg_url, engine, ids
    engine.dispose()


def _start_worker(
    server: PrefectServer, tmp_path: Path, name: str, pg_url: str, cfg: Path, lease_s: str
) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    claims = tmp_path / f"claims-{name}.jsonl"
    env = server.client_env(REASONMED_DATABASE_URL=pg_url, REASONMED_CLAIM_LEASE_S=lease_s)
    proc = subprocess.Popen(
        [PYTHON, str(script), str(claims), str(cfg), name],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / f"{name}.log").open("wb"),
        start_new_session=True,
    )
    return proc, claims


def _claims(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [i for line in path.read_text().splitlines() for i in json.loads(line)]


def _finish(
    proc: subprocess.Popen[bytes], tmp_path: Path, name: str, timeout_s: float = 240
) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    finally:
        stop_process(proc)
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert proc.returncode == 0, f"worker {name} failed:\n{log[-4000:]}"
    line = next(x for x in out.decode().splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _paths_by_question(engine: Engine) -> dict[int, tuple[int, set[int]]]:
    """question -> (generated paths, runs that generated them)."""
    with engine.connect() as c:
        rows = c.execute(
            select(ReasoningPath.question_id, ReasoningPath.run_id).where(ReasoningPath.origin == "generated")
        ).all()
    out: dict[int, tuple[int, set[int]]] = {}
    for q, run in rows:
        n, runs = out.get(q, (0, set()))
        out[q] = (n + 1, runs | {run})
    return out


def test_two_workers_never_process_the_same_question(
    prefect_server: PrefectServer,
    pending: tuple[str, Engine, list[int]],
    tmp_path: Path,
) -> None:
    pg_url, engine, ids = pending
    with SimServer(questions_db=pg_url, base_latency_ms=5, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        a, claims_a = _start_worker(prefect_server, tmp_path, "a", pg_url, cfg, "600")
        try:
            b, claims_b = _start_worker(prefect_server, tmp_path, "b", pg_url, cfg, "600")
        except BaseException:
            stop_process(a)
            raise
        try:
            result_a = _finish(a, tmp_path, "a")
        finally:
            result_b = _finish(b, tmp_path, "b")
        metrics = sim.metrics()

    got_a, got_b = _claims(claims_a), _claims(claims_b)
    assert got_a and got_b, "both workers should have taken part"
    assert sorted(got_a + got_b) == ids  # the claims partition the pending set: each question exactly once
    assert result_a["done"] + result_b["done"] == len(ids) and result_a["failed"] == result_b["failed"] == 0

    by_q = _paths_by_question(engine)
    assert set(by_q) == set(ids)
    assert all(n == 9 and len(runs) == 1 for n, runs in by_q.values())  # one set of 9 paths, from one run
    assert {q for q, (_n, runs) in by_q.items() if runs == {result_a["run_id"]}} == set(got_a)
    with engine.connect() as c:
        gen_calls = c.execute(
            select(func.count()).select_from(LLMCall).where(LLMCall.role == "generator")
        ).scalar_one()
        verdicts = c.execute(select(func.count()).select_from(Verdict)).scalar_one()
        final = c.execute(
            select(func.count())
            .select_from(QuestionOutcome)
            .where(QuestionOutcome.status.in_(("accepted", "rejected")))
        ).scalar_one()
    # the simulator saw every generation and verification request exactly once
    assert metrics['requests_by_role_total{role="generate"}'] == gen_calls == 9 * len(ids)
    assert metrics['requests_by_role_total{role="verify"}'] == verdicts
    assert final == len(ids)
    assert claims_repo.count_pending(engine) == 0


def test_a_dead_workers_questions_are_picked_up_after_its_lease_expires(
    prefect_server: PrefectServer,
    pending: tuple[str, Engine, list[int]],
    tmp_path: Path,
) -> None:
    pg_url, engine, ids = pending
    lease = "4"
    with SimServer(questions_db=pg_url, base_latency_ms=40, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        dead, claims_dead = _start_worker(prefect_server, tmp_path, "dead", pg_url, cfg, lease)
        try:
            deadline = time.monotonic() + 120
            while not _paths_by_question(engine):  # it has claimed and is generating
                assert dead.poll() is None, (tmp_path / "dead.log").read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "the first worker never started generating"
                time.sleep(0.1)
            os.killpg(dead.pid, signal.SIGKILL)
            dead.wait(timeout=30)
        finally:
            stop_process(dead)
        with engine.connect() as c:
            held = set(c.execute(select(Question.id).where(Question.claimed_by == "dead")).scalars())
        assert held, "the dead worker should still hold its claims"
        generated = {q: runs for q, (n, runs) in _paths_by_question(engine).items() if n == 9}
        # while the lease runs, nobody else may take its questions
        probe = claims_repo.claim_questions(engine, worker="probe", limit=len(ids), lease_s=60)
        assert probe and not set(probe) & held
        claims_repo.release_claims(engine, worker="probe", question_ids=probe)

        time.sleep(float(lease) + 0.5)
        heir, claims_heir = _start_worker(prefect_server, tmp_path, "heir", pg_url, cfg, lease)
        result = _finish(heir, tmp_path, "heir")

    assert held <= set(_claims(claims_heir))  # the expired claims were taken over
    assert result["failed"] == 0 and claims_repo.count_pending(engine) == 0
    by_q = _paths_by_question(engine)
    assert set(by_q) == set(ids) and all(n == 9 for n, _runs in by_q.values())
    assert set(_claims(claims_dead)) >= held
    # what the dead worker had generated was kept, not asked for again (a repeated call would carry the
    # heir's run id: call records are upserted by their key)
    with engine.connect() as c:
        calls = c.execute(
            select(LLMCall.question_id, LLMCall.run_id).where(
                LLMCall.role == "generator", LLMCall.question_id.in_(list(generated))
            )
        ).all()
    assert calls and all({run} == generated[q] for q, run in calls)
