"""The README's main command, as a user runs it: a fresh directory, the embedded default (SQLite + the
bundled simulator started and stopped by the command itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS


def test_reasonmed_run_on_the_embedded_default(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REASONMED_", "PREFECT_API", "PREFECT_SERVER_LOGGING", "PREFECT_LOGGING"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    cli = [sys.executable, "-m", "reasonmed"]
    subprocess.run(
        [*cli, "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True
    )  # the real-work database
    out = subprocess.run(
        [
            *cli,
            "run",
            str(PUBMEDQA_FILE),
            "--source",
            "pubmedqa",
            "--benchmark-test-ids",
            str(PUBMEDQA_TEST_IDS),
            "--limit",
            "12",
            "--sim-latency-ms",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "starting the bundled SIMULATOR" in out.stdout and "simulator stopped" in out.stdout
    assert "questions by tier and status" in out.stdout
    # The simulator's work goes to its own database (created and migrated by the run), never to the one
    # real runs use.
    assert (
        "reasonmed-sim.db: created and migrated" in out.stdout
        and "never to the one real runs use" in out.stdout
    )
    with create_engine(f"sqlite:///{tmp_path / 'reasonmed.db'}").connect() as c:
        assert c.execute(text("select count(*) from questions")).scalar_one() == 0
    assert "Traceback" not in out.stdout + out.stderr and "ERROR" not in out.stderr, out.stderr[
        -6000:
    ]  # a clean finish reads as one
    engine = create_engine(f"sqlite:///{tmp_path / 'reasonmed-sim.db'}")
    with engine.connect() as c:
        assert c.execute(text("select count(*) from questions")).scalar_one() == 1000
        assert (
            c.execute(
                text("select count(*) from question_outcomes where status in ('accepted','rejected')")
            ).scalar_one()
            == 12
        )
        assert (
            c.execute(
                text("""select count(*) from question_outcomes o join questions q on q.id = o.question_id
                                 where q.is_benchmark_test""")
            ).scalar_one()
            == 0
        )
        models = {m for (m,) in c.execute(text("select distinct model from llm_calls"))}
    assert models and all(m.startswith("sim/") for m in models)  # simulated output is labelled as such
    # Re-running ingests nothing new and leaves finished questions alone.
    again = subprocess.run(
        [*cli, "run", str(PUBMEDQA_FILE), "--source", "pubmedqa", "--limit", "3", "--sim-latency-ms", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "already ingested" in again.stdout
    with engine.connect() as c:
        assert (
            c.execute(
                text("select count(*) from question_outcomes where status in ('accepted','rejected')")
            ).scalar_one()
            == 15
        )
        assert (
            c.execute(
                text("select count(*) from pipeline_runs where kind = 'build' and status = 'completed'")
            ).scalar_one()
            == 2
        )


def test_exit_4_when_prefects_temporary_server_never_comes_up(tmp_path: Path) -> None:
    """The temporary server's database is a port nothing listens on, so it is never healthy: the run ends
    within the startup timeout with exit 4 and the one line that says what to do, having claimed nothing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REASONMED_", "PREFECT_API", "PREFECT_SERVER", "PREFECT_LOGGING"))
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="3",
        PREFECT_SERVER_DATABASE_CONNECTION_URL="postgresql+asyncpg://nobody@127.0.0.1:9/none",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "reasonmed",
            "run",
            str(PUBMEDQA_FILE),
            "--source",
            "pubmedqa",
            "--benchmark-test-ids",
            str(PUBMEDQA_TEST_IDS),
            "--limit",
            "2",
            "--sim-latency-ms",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 4, out.stdout[-3000:] + out.stderr[-3000:]
    assert "error: Prefect's temporary server did not start in time (3 s)" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    with create_engine(f"sqlite:///{tmp_path / 'reasonmed-sim.db'}").connect() as c:
        assert c.execute(text("select count(*) from question_outcomes")).scalar_one() == 0
        assert c.execute(text("select count(*) from llm_calls")).scalar_one() == 0


def test_a_replica_plan_before_any_question_is_stored(tmp_path: Path) -> None:
    """``--dry-run --nodes`` on a database with nothing pending plans from the pipeline file's limits (it
    crashed on an empty plan before), and leaves the hosted endpoints out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONMED_", "PREFECT_API"))}
    env["REASONMED_DATABASE_URL"] = f"sqlite:///{tmp_path / 'plan.db'}"
    paper = Path(__file__).resolve().parents[2] / "deploy" / "pipeline.paper.yaml"
    hosted = ("refiner", "regenerator", "summarizer")
    args = ["run", "--config", str(paper), "--dry-run", "--nodes", "12"]
    out = subprocess.run(
        [sys.executable, "-m", "reasonmed", *args, *(a for h in hosted for a in ("--hosted", h))],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "no question pending, so planned for 10,000 questions" in out.stdout
    rows = {
        cells[0]: int(cells[3])
        for line in out.stdout.split("replicas for 12 node(s) x 2")[1].splitlines()
        if line.startswith("│") and (cells := [c.strip() for c in line.strip("│").split("│")])[3].isdigit()
    }
    assert set(rows) == {"qwen2.5-72b", "r1-distill-70b", "huatuogpt-o1-70b"}  # none of the hosted ones
    assert sum(rows.values()) == 24  # 12 nodes x 2 replicas
    assert rows["qwen2.5-72b"] > rows["r1-distill-70b"] == rows["huatuogpt-o1-70b"] >= 1
    wrong = subprocess.run(
        [sys.executable, "-m", "reasonmed", *args, "--hosted", "refinr"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode != 0 and "--hosted refinr: no such endpoint" in wrong.stdout + wrong.stderr
