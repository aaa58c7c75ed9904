"""The fault matrix: what the pipeline meets in real operation, each row through the real CLI (`reasonmed run`
as a process, against the simulator over HTTP, Postgres, and the session's Prefect server), asserting the
requests counted at the server, a wall-time bound, the exit code and last line, and the database state.
None may loop; none may report success.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prefect.settings
import pytest
import yaml
from sqlalchemy import text

from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS, write_sim_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POISON = "POISON-7Q"


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def last_line(self) -> str:
        return [ln for ln in self.stdout.splitlines() if ln.strip()][-1]


def _questions(path: Path, n: int, *, poison: int | None = None, skip: int = 0) -> Path:
    """``n`` PubMedQA training items as a PQA-L file; item ``poison`` carries the marker the simulator
    is told to refuse."""
    data = json.loads(PUBMEDQA_FILE.read_text())
    test_ids = set(json.loads(PUBMEDQA_TEST_IDS.read_text()))
    keys = [k for k in data if k not in test_ids][skip : skip + n]
    out = {k: dict(data[k]) for k in keys}
    if poison is not None:
        k = keys[poison]
        out[k]["QUESTION"] = f"{out[k]['QUESTION']} {POISON}"
    path.write_text(json.dumps(out))
    return path


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REASONMED_")}
    env.update(
        REASONMED_DATABASE_URL=db_url,
        PREFECT_API_URL=prefect.settings.PREFECT_API_URL.value(),
        PREFECT_LOGGING_LEVEL="WARNING",
        COLUMNS="250",
        **extra,
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], Any]:
    out = log.open("w")
    err = log.with_suffix(".err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reasonmed", *args], cwd=REPO, env=env, stdout=out, stderr=err
    )
    return proc, (out, err, log)


def _finish(proc: subprocess.Popen[bytes], handles: Any, started: float, timeout: float) -> CliRun:
    out, err, log = handles
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the run did not end within {timeout} s:\n{log.read_text()[-3000:]}") from None
    finally:
        out.close()
        err.close()
    return CliRun(
        proc.returncode, log.read_text(), log.with_suffix(".err").read_text(), time.monotonic() - started
    )


def _cli(args: list[str], env: dict[str, str], log: Path, timeout: float = 240) -> CliRun:
    started = time.monotonic()
    proc, handles = _start(args, env, log)
    return _finish(proc, handles, started, timeout)


def _q(engine: Any, sql: str, **params: Any) -> Any:
    with engine.connect() as c:
        return c.execute(text(sql), params).scalar_one()


def _rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(text(sql), params).all())


def _metric(sim: SimServer, outcome: str) -> float:
    return sim.metrics().get(f'requests_total{{outcome="{outcome}"}}', 0.0)


def _requests(sim: SimServer) -> float:
    return sum(v for k, v in sim.metrics().items() if k.startswith("requests_total{"))


def _config(path: Path, sim: SimServer, **overrides: Any) -> Path:
    return write_sim_config(path, sim.base_url, **overrides)


def _set_endpoints(path: Path, **fields: Any) -> None:
    data = yaml.safe_load(path.read_text())
    for ep in data["endpoints"].values():
        ep.update(fields)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _wait_for(
    engine: Any, sql: str, at_least: int, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 120
) -> None:
    deadline = time.monotonic() + limit_s
    while _q(engine, sql) < at_least:
        assert proc.poll() is None, "the run ended too early:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)


def _no_claims_held(engine: Any) -> bool:
    return _q(engine, "select count(*) from questions where claimed_by is not null") == 0


def _figure(row: str, **figures: float | int) -> None:
    """One line of the fault matrix's figures (``pytest -s tests/integration/test_fault_matrix.py`` shows them)."""
    print(
        "FAULT MATRIX | "
        + row
        + " | "
        + ", ".join(
            f"{k.replace('_', ' ')} {v:.1f}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
            for k, v in figures.items()
        )
    )


# --------------------------------------------------------------------------- rows


def test_a_question_refused_for_good_is_set_aside_after_one_attempt(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    """HTTP 400 ("maximum context length exceeded") for every request of one question: its 9 generation
    requests are sent once each, it is set aside, the run ends non-zero, later runs skip it until
    `reasonmed retry` puts it back."""
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 6, poison=2), "pubmedqa")
    poison_id = _q(engine, "select id from questions where question like :m", m=f"%{POISON}%")
    with SimServer(
        questions_db=pg_url, base_latency_ms=1, per_token_ms=0, targeted_faults=(f"*:{POISON}=400",)
    ) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        env = _env(pg_url)
        run = _cli(["run", "--config", str(cfg)], env, tmp_path / "run1.log")
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
        assert run.last_line.startswith("INCOMPLETE: 1 question(s) set aside and 0 failed"), run.last_line
        assert run.seconds < 90
        assert _metric(sim, "400") == 9  # 3 generators x 3 temperatures, none retried
        _figure("4xx for one question", requests_for_it=9, seconds_to_end=run.seconds, exit=run.returncode)
        row = _rows(
            engine,
            "select stage, failures, permanent, last_error_kind, last_error, set_aside_at "
            "from question_failures where question_id = :q",
            q=poison_id,
        )
        assert len(row) == 1
        stage, failures, permanent, kind, error, aside = row[0]
        assert (stage, failures, bool(permanent), kind) == ("generate", 1, True, "client_error")
        assert "maximum context length" in error and aside is not None
        # The rest of the night was not spent on it: every other question finished.
        assert (
            _q(engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')") == 5
        )
        assert _no_claims_held(engine)

        again = _cli(["run", "--config", str(cfg)], env, tmp_path / "run2.log")
        assert again.returncode == 0, again.stdout[-2000:]
        assert again.last_line.startswith("nothing left to do") and "1 set aside" in again.last_line
        assert _metric(sim, "400") == 9  # skipped: not one request more

        put_back = _cli(["retry", "--question", str(poison_id)], env, tmp_path / "retry.log", timeout=60)
        assert put_back.returncode == 0 and f"put back 1 question(s): {poison_id}" in put_back.stdout
        third = _cli(["run", "--config", str(cfg)], env, tmp_path / "run3.log")
        assert third.returncode == 1 and _metric(sim, "400") == 18
        assert _q(engine, "select failures from question_failures where question_id = :q", q=poison_id) == 1


def test_transient_failures_use_up_the_attempt_budget_across_runs(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    """HTTP 500 for every generation request of two questions: a retryable failure, retried by the client
    (``max_retries`` 1: two attempts a request) and failing again. With ``question_attempts`` 3 (the default),
    worked out by hand: runs 1 and 2 record one failed attempt a run for both and set neither aside; in run 3
    the first fails a third time and is set aside, while the second, whose server answers again, recovers on
    its last attempt and is finished; run 4 sends the first nothing. Each failed run costs a question its 9
    generation requests x 2 attempts: 18 refusals."""
    engine = get_engine(pg_url)
    data = json.loads(_questions(tmp_path / "q.json", 4).read_text())
    keys = list(data)
    for key, marker in ((keys[1], "ALWAYS-500-Q"), (keys[3], "HEALS-500-Q")):
        data[key]["QUESTION"] = f"{data[key]['QUESTION']} {marker}"
    (tmp_path / "q.json").write_text(json.dumps(data))
    ingest_file(engine, tmp_path / "q.json", "pubmedqa")
    always = _q(engine, "select id from questions where question like '%ALWAYS-500-Q'")
    heals = _q(engine, "select id from questions where question like '%HEALS-500-Q'")
    env = _env(pg_url)

    def failures(qid: int) -> tuple[int, bool]:
        ((n, aside),) = _rows(
            engine, "select failures, set_aside_at from question_failures where question_id = :q", q=qid
        )
        return n, aside is not None

    both = ("generate:ALWAYS-500-Q=500", "generate:HEALS-500-Q=500")
    with SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0, targeted_faults=both) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        _set_endpoints(cfg, max_retries=1)
        for n in (1, 2):
            run = _cli(["run", "--config", str(cfg)], env, tmp_path / f"run{n}.log")
            assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
            assert run.last_line.startswith("INCOMPLETE: 0 question(s) set aside and 2 failed"), run.last_line
            assert failures(always) == failures(heals) == (n, False)
            assert _metric(sim, "500") == 36 * n
    with SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0, targeted_faults=both[:1]) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        _set_endpoints(cfg, max_retries=1)
        third = _cli(["run", "--config", str(cfg)], env, tmp_path / "run3.log")
        assert third.returncode == 1, third.stdout[-2000:] + third.stderr[-2000:]
        assert third.last_line.startswith("INCOMPLETE: 1 question(s) set aside and 0 failed"), third.last_line
        assert failures(always) == (3, True)
        assert _q(engine, "select status from question_outcomes where question_id = :q", q=heals) in (
            "accepted",
            "rejected",
        )
        assert _metric(sim, "500") == 18
        fourth = _cli(["run", "--config", str(cfg)], env, tmp_path / "run4.log")
        assert fourth.returncode == 0, fourth.stdout[-2000:]
        assert "1 set aside" in fourth.last_line and _metric(sim, "500") == 18  # not one request more
    assert _no_claims_held(engine)


def test_an_endpoint_down_from_the_start_stops_the_run_before_any_claim(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 4), "pubmedqa")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        data = yaml.safe_load(cfg.read_text())
        data["endpoints"]["sim-summarizer"]["base_url"] = f"http://127.0.0.1:{dead_port}/v1"
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        run = _cli(["run", "--config", str(cfg)], _env(pg_url), tmp_path / "run.log", timeout=60)
        assert run.returncode == 3, run.stdout[-2000:] + run.stderr[-2000:]
        assert "endpoint sim-summarizer" in run.stderr and "unreachable" in run.stderr
        assert "Traceback" not in run.stderr and run.seconds < 45
        assert _requests(sim) == 0  # not one chat request to the live endpoints either
        _figure("endpoint down from the start", requests=0, seconds_to_end=run.seconds, exit=run.returncode)
    assert _q(engine, "select count(*) from pipeline_runs where kind = 'build'") == 0
    assert _no_claims_held(engine)


def test_an_endpoint_dying_mid_run_opens_its_breaker_and_ends_the_run(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 30), "pubmedqa")
    with SimServer(questions_db=pg_url, base_latency_ms=20, per_token_ms=0) as sim:
        cfg = _config(tmp_path / "p.yaml", sim, max_in_flight=8)
        # Retries alone would take minutes to give up; the breaker decides within a second.
        _set_endpoints(cfg, breaker_window_s=1.0, breaker_min_failures=3, max_retries=50, backoff_max_s=0.2)
        started = time.monotonic()
        proc, handles = _start(
            ["run", "--config", str(cfg), "--questions-in-flight", "8"], _env(pg_url), tmp_path / "run.log"
        )
        _wait_for(engine, "select count(*) from llm_calls", 40, proc, tmp_path / "run.log")
        sim.set_faults("*:*=500")
        died = time.monotonic()
        run = _finish(proc, handles, started, timeout=90)
        ended = time.monotonic()
        assert run.returncode == 3, run.stdout[-2000:] + run.stderr[-2000:]
        assert (
            run.last_line.startswith("STOPPED: endpoint ") and "failed every request since" in run.last_line
        )
        assert ended - died < 15
        errors_at_end = _metric(sim, "500")
        _figure(
            "endpoint dying mid-run",
            failed_requests=int(errors_at_end),
            seconds_from_death_to_end=ended - died,
            exit=run.returncode,
        )
        # The breaker, not the retries, ended it: retries alone would send each of the up to 8 x 9
        # requests in flight 51 times.
        assert 3 <= errors_at_end < 8 * 9 * 51 / 4
        time.sleep(1.0)
        assert _metric(sim, "500") == errors_at_end  # and nothing is sent after the run ended
    assert _no_claims_held(engine)
    # The endpoint's outage is not the questions' fault: none is set aside or charged an attempt.
    assert _q(engine, "select count(*) from question_failures") == 0
    status, error = _rows(engine, "select status, error from pipeline_runs where kind = 'build'")[0]
    assert status == "failed" and "failed every request since" in error
    assert _q(engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')") < 30


def test_output_that_never_parses_ends_degraded(pg_url: str, prefect_harness: None, tmp_path: Path) -> None:
    """Every verdict unparseable: each is asked parse_attempts times, recorded as `unparseable`, the
    questions are rejected (never accepted on an unreadable verdict) and the run says it is degraded."""
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 3), "pubmedqa")
    with SimServer(
        questions_db=pg_url, base_latency_ms=1, per_token_ms=0, targeted_faults=("verify:*=noanswer",)
    ) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        run = _cli(["run", "--config", str(cfg)], _env(pg_url), tmp_path / "run.log")
        noanswer = _metric(sim, "noanswer")
    assert run.returncode == 5, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.last_line.startswith("DEGRADED: verifier output mostly unusable"), run.last_line
    assert run.seconds < 120
    attempts = yaml.safe_load(cfg.read_text())["agents"]["verifier"].get("parse_attempts", 3)
    # 9 generated + 1 refined + 2 regenerated paths per question, each verdict asked `attempts` times.
    assert _q(engine, "select count(*) from verdicts") == 3 * 12
    assert _q(engine, "select count(*) from verdicts where outcome = 'unparseable'") == 3 * 12
    assert noanswer == 3 * 12 * attempts
    _figure(
        "output that never parses",
        verifier_requests_per_question=int(noanswer) // 3,
        seconds_to_end=run.seconds,
        exit=run.returncode,
    )
    assert _q(engine, "select count(*) from question_outcomes where status = 'rejected'") == 3
    assert _q(engine, "select count(*) from accepted_paths") == 0
    assert _no_claims_held(engine)


def test_a_stage_that_is_always_truncated_sets_its_questions_aside(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 4), "pubmedqa")
    with SimServer(
        questions_db=pg_url,
        base_latency_ms=1,
        per_token_ms=0,
        default_accuracy=1.0,
        targeted_faults=("summarize:*=truncate",),
    ) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        run = _cli(["run", "--config", str(cfg)], _env(pg_url), tmp_path / "run.log")
        truncated = _metric(sim, "truncate")
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.last_line.startswith("INCOMPLETE: 4 question(s) set aside"), run.last_line
    retries = yaml.safe_load(cfg.read_text()).get("output_retries", 2)
    kept = _q(engine, "select count(*) from accepted_paths")
    assert kept == 4 * 2  # easy tier: the top 2 paths of each question
    assert truncated == kept * (1 + retries)  # each summary asked once and re-asked `retries` times
    _figure(
        "stage always truncated",
        summary_requests_per_question=int(truncated) // 4,
        seconds_to_end=run.seconds,
        exit=run.returncode,
    )
    assert (
        _q(
            engine,
            "select count(*) from accepted_paths where dropped_reason = :r",
            r=f"summary truncated after {retries} re-ask(s)",
        )
        == kept
    )
    assert [
        tuple(r)
        for r in _rows(
            engine,
            "select stage, count(*) from question_failures where set_aside_at is not null group by stage",
        )
    ] == [("summarize", 4)]
    assert _q(engine, "select count(*) from summaries") == 0
    assert _q(engine, "select count(*) from question_outcomes where status = 'accepted'") == 0
    assert _no_claims_held(engine)


def test_a_question_that_fails_only_in_summarization_costs_only_itself(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 5, poison=1), "pubmedqa")
    poison_id = _q(engine, "select id from questions where question like :m", m=f"%{POISON}%")
    with SimServer(
        questions_db=pg_url,
        base_latency_ms=1,
        per_token_ms=0,
        default_accuracy=1.0,
        targeted_faults=(f"summarize:{POISON}=400",),
    ) as sim:
        cfg = _config(tmp_path / "p.yaml", sim)
        run = _cli(["run", "--config", str(cfg)], _env(pg_url), tmp_path / "run.log")
        refused = _metric(sim, "400")
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.last_line.startswith("INCOMPLETE: 1 question(s) set aside"), run.last_line
    assert refused == 2  # its two accepted paths' summaries, each refused once, never retried
    _figure(
        "fails only in summarization",
        refused_requests=int(refused),
        seconds_to_end=run.seconds,
        exit=run.returncode,
    )
    assert _rows(
        engine, "select question_id, stage from question_failures where set_aside_at is not null"
    ) == [(poison_id, "summarize")]
    assert _q(engine, "select count(*) from question_outcomes where status = 'accepted'") == 4
    assert (
        _q(engine, "select status from question_outcomes where question_id = :q", q=poison_id) == "resolved"
    )
    assert _no_claims_held(engine)


def test_sigterm_mid_run_stops_within_seconds_and_a_rerun_does_exactly_the_rest(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 30), "pubmedqa")
    with SimServer(questions_db=pg_url, base_latency_ms=40, per_token_ms=0) as sim:
        cfg = _config(tmp_path / "p.yaml", sim, max_in_flight=8)
        env = _env(pg_url)
        started = time.monotonic()
        proc, handles = _start(
            ["run", "--config", str(cfg), "--questions-in-flight", "6"], env, tmp_path / "run.log"
        )
        _wait_for(engine, "select count(*) from llm_calls", 100, proc, tmp_path / "run.log")
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        run = _finish(proc, handles, started, timeout=60)
        stopped_in = time.monotonic() - signalled
        assert stopped_in < 30
        assert run.returncode == 130, run.stdout[-2000:] + run.stderr[-2000:]
        assert run.last_line.startswith("INTERRUPTED: SIGTERM received"), run.last_line
        assert _no_claims_held(engine)  # released at once: the rerun needs no lease to run out
        assert _rows(engine, "select status from pipeline_runs where kind = 'build'") == [("interrupted",)]
        finished = _q(
            engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')"
        )
        assert finished < 30
        calls_at_stop = _q(engine, "select count(*) from llm_calls")

        sim.reset_metrics()
        rerun = _cli(["run", "--config", str(cfg)], env, tmp_path / "rerun.log")
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        rerun_requests = _requests(sim)
    # Exactly what was missing: every request of the rerun made a new call row, none repeated a stored one.
    assert rerun_requests == _q(engine, "select count(*) from llm_calls") - calls_at_stop
    _figure(
        "SIGTERM mid-run",
        seconds_from_signal_to_exit=stopped_in,
        exit=run.returncode,
        rerun_requests=int(rerun_requests),
        calls_before_stop=calls_at_stop,
    )
    assert _q(engine, "select count(*) from question_outcomes where status in ('accepted', 'rejected')") == 30
    assert (
        _q(
            engine,
            """select count(*) from (select question_id from reasoning_paths where origin = 'generated'
                         group by question_id having count(*) <> 9) bad""",
        )
        == 0
    )


def test_a_flow_run_cancelled_through_the_prefect_api_stops_and_releases_its_claims(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelling

    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.json", 30), "pubmedqa")
    with SimServer(questions_db=pg_url, base_latency_ms=40, per_token_ms=0) as sim:
        cfg = _config(tmp_path / "p.yaml", sim, max_in_flight=8)
        started = time.monotonic()
        proc, handles = _start(
            ["run", "--config", str(cfg), "--questions-in-flight", "6"], _env(pg_url), tmp_path / "run.log"
        )
        _wait_for(engine, "select count(*) from llm_calls", 60, proc, tmp_path / "run.log")
        flow_run_id = _q(engine, "select prefect_flow_run_id from pipeline_runs where kind = 'build'")

        async def cancel() -> None:
            async with get_client() as client:
                await client.set_flow_run_state(
                    flow_run_id, Cancelling(message="cancelled by the test"), force=True
                )

        asyncio.run(cancel())
        cancelled = time.monotonic()
        run = _finish(proc, handles, started, timeout=60)
        stopped_in = time.monotonic() - cancelled
        assert stopped_in < 30
    _figure("cancelled through the Prefect API", seconds_from_cancel_to_exit=stopped_in, exit=run.returncode)
    assert run.returncode == 130, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.last_line.startswith("INTERRUPTED: cancelled through the Prefect API"), run.last_line
    assert _no_claims_held(engine)
    assert _rows(engine, "select status from pipeline_runs where kind = 'build'") == [("interrupted",)]

    async def final_state() -> StateType:
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state.type

    assert asyncio.run(final_state()) == StateType.CANCELLED
