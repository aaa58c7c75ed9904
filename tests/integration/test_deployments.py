"""The deployments, end to end: a real `prefect server start` on its own Postgres database, the
deployments applied with `prefect deploy --all --prefect-file deploy/prefect.yaml` from the repository
root, a process worker (or `reasonmed serve`) running the triggered runs against the simulator and the
pipeline's Postgres database. The simulator fails the first chat request, so an endpoint retry is
logged (``reasonmed.llm``) inside a run: the line must reach that run's logs in the API."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from reasonmed.db.engine import make_engine
from reasonmed.db.models import DatasetVersion, PipelineRun, QuestionOutcome, ReasoningPath
from reasonmed.sim.launcher import SimServer
from tests.fixtures_ops import PREFECT, PYTHON, PrefectServer, stop_process, write_pubmedqa
from tests.fixtures_pipeline import PUBMEDQA_TEST_IDS, REPO, write_sim_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@contextmanager
def against(server: PrefectServer) -> Iterator[None]:
    """Client calls from this process go to the test's server (whatever else the session set up)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def api(server: PrefectServer, call: Callable[[Any], Any]) -> Any:
    """Run ``await call(client)`` against the server."""
    from prefect.client.orchestration import get_client

    async def go() -> Any:
        async with get_client() as client:
            return await call(client)

    with against(server):
        return asyncio.run(go())


def cli(server: PrefectServer, *args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [PREFECT, *args], cwd=cwd, env=server.client_env(), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_final(
    server: PrefectServer,
    run_ids: list[Any],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float = 300,
) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [api(server, lambda c, i=i: c.read_flow_run(i)) for i in run_ids]
        if all(r.state and r.state.type.value in FINAL for r in runs):
            return runs
        assert proc.poll() is None, f"the worker exited:\n{log.read_text(errors='replace')[-4000:]}"
        assert time.monotonic() < deadline, (
            f"runs not finished: {[r.state for r in runs]}\n{log.read_text(errors='replace')[-4000:]}"
        )
        time.sleep(1)


def shipped_retry_line(server: PrefectServer, run_id: Any, timeout_s: float = 60.0) -> bool:
    """Whether the endpoint-retry line of ``run_id`` (or a run under it) reaches the API. A run's process
    sends its log lines in batches (every 2 s, and at exit), so a line may land after the run's final
    state: waited for, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not any("retrying: kind=server_error" in m for m in retry_log_lines(server, run_id)):
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def retry_log_lines(server: PrefectServer, run_id: Any) -> list[str]:
    """The ``reasonmed.*`` endpoint-retry lines the API holds for ``run_id`` or a run under it (build, shards)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterName

    logs = api(
        server,
        lambda c: c.read_logs(
            log_filter=LogFilter(name=LogFilterName(any_=["reasonmed.llm.openai_backend"]))
        ),
    )
    return [log.message for log in logs if log.flow_run_id and run_id in _lineage(server, log.flow_run_id)]


def _lineage(server: PrefectServer, flow_run_id: Any) -> list[Any]:
    """The flow run and its parents, up to the top-level run (at most a few levels: nightly > build > shard)."""
    chain = [flow_run_id]
    for _ in range(5):
        run = api(server, lambda c, i=chain[-1]: c.read_flow_run(i))
        if run.parent_task_run_id is None:
            break
        chain.append(api(server, lambda c, t=run.parent_task_run_id: c.read_task_run(t)).flow_run_id)
    return chain


def growth_artifacts(server: PrefectServer) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    return api(
        server,
        lambda c: c.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dataset-growth"]))
        ),
    )


@pytest.fixture
def pipeline(pg_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The pipeline's database, the simulator, and the files a night reads."""
    with SimServer(questions_db=pg_url, base_latency_ms=2, per_token_ms=0, fault_script=("500",)) as sim:
        inbox = tmp_path / "inbox"
        write_pubmedqa(inbox / "part1.json", 12)
        ids = inbox / "test_ground_truth.json"
        ids.write_text(PUBMEDQA_TEST_IDS.read_text())
        yield {
            "url": pg_url,
            "sim": sim,
            "inbox": inbox,
            "config": write_sim_config(tmp_path / "pipeline.yaml", sim.base_url),
            "params": {
                "input_location": str(inbox),
                "source": "pubmedqa",
                "benchmark_test_ids": str(ids),
                "max_questions": 10,
                "config": str(tmp_path / "pipeline.yaml"),
                "export_out": str(tmp_path / "exports"),
                "export_formats": ["jsonl"],
                "shard_size": 5,
                "questions_in_flight": 5,
            },
        }


def _start(
    cmd: list[str], server: PrefectServer, pg_url: str, tmp_path: Path, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    env = server.client_env(
        REASONMED_DATABASE_URL=pg_url,
        REASONMED_EXPORT_DIR=str(tmp_path / "exports"),
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        REASONMED_CODE_DIR=str(REPO),  # the deployments' pull step: where this worker keeps the code
    )
    workdir = tmp_path / f"{name}-cwd"  # not the repository: the deployment's pull step must find the code
    workdir.mkdir()
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, log


def test_nightly_deployment_runs_on_a_worker_within_budget_and_grows_night_after_night(
    prefect_server: PrefectServer,
    pipeline: dict[str, Any],
    tmp_path: Path,
) -> None:
    server = prefect_server
    cli(server, "work-pool", "create", "reasonmed", "--type", "process", "--overwrite")
    out = cli(server, "deploy", "--all", "--prefect-file", "deploy/prefect.yaml")
    assert out.count("successfully created") == 7, out

    nightly = api(server, lambda c: c.read_deployment_by_name("nightly-growth/nightly"))
    (schedule,) = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 2 * * *", "UTC", True)
    assert (
        nightly.global_concurrency_limit.limit == 1
        and nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    )
    assert nightly.work_pool_name == "reasonmed" and nightly.parameters["priority"] == "round-robin"
    # the code is found through the worker's REASONMED_CODE_DIR, resolved on the worker at run time
    assert nightly.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $REASONMED_CODE_DIR }}"}}
    ]
    assert nightly.job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "reasonmed"
    # the run form: choices and help (tests/integration/test_flow_parameters.py checks every parameter of every flow)
    priority = nightly.parameter_openapi_schema["properties"]["priority"]
    assert priority["enum"] == ["fifo", "round-robin"] and "round-robin" in priority["description"]
    for name in (
        "build-dataset/build",
        "export-dataset/export",
        "ingest/ingest",
        "evaluate-model/eval",
        "score-dataset/score",
        "audit-report/report",
    ):
        d = api(server, lambda c, n=name: c.read_deployment_by_name(n))
        assert not d.schedules and d.work_pool_name == "reasonmed"

    engine = make_engine(pipeline["url"])
    worker, log = _start(
        [PREFECT, "worker", "start", "--pool", "reasonmed", "--name", "test-worker"],
        server,
        pipeline["url"],
        tmp_path,
        "worker",
    )
    try:
        # night 1: 12 questions arrive, the budget is 10
        run1 = api(
            server, lambda c: c.create_flow_run_from_deployment(nightly.id, parameters=pipeline["params"])
        )
        (done1,) = wait_final(server, [run1.id], worker, log)
        assert done1.state.type.value == "COMPLETED", log.read_text(errors="replace")[-4000:]
        assert done1.name.startswith("nightly-20")  # nightly-YYYY-MM-DD
        assert shipped_retry_line(server, run1.id)
        finished1 = _finished(engine)
        assert len(finished1) == 10  # the budget
        artifacts = growth_artifacts(server)
        assert [a.flow_run_id for a in artifacts] == [run1.id] and artifacts[0].type == "markdown"
        night1 = str(artifacts[0].data)
        with engine.connect() as c:
            accepted1 = c.execute(
                select(func.count()).select_from(QuestionOutcome).where(QuestionOutcome.status == "accepted")
            ).scalar_one()
        # The figures in the artifact are the database's: questions added, the budget, the new version.
        assert (
            night1.startswith("# Dataset growth")
            and f"| questions added (accepted) | {accepted1} | {accepted1} |" in night1
        )
        assert "max questions **10**" in night1 and "Version **1**" in night1

        # night 2: 8 more arrive; the 2 left over and the 8 new are processed, nothing from night 1 again
        write_pubmedqa(pipeline["inbox"] / "part2.json", 8, skip=12)
        run2 = api(
            server, lambda c: c.create_flow_run_from_deployment(nightly.id, parameters=pipeline["params"])
        )
        (done2,) = wait_final(server, [run2.id], worker, log)
        assert done2.state.type.value == "COMPLETED", log.read_text(errors="replace")[-4000:]
    finally:
        stop_process(worker)
    finished2 = _finished(engine)
    assert len(finished2) == 20 and finished1 < finished2
    with engine.connect() as c:
        paths = c.execute(
            select(ReasoningPath.question_id, func.count())
            .where(ReasoningPath.origin == "generated")
            .group_by(ReasoningPath.question_id)
        ).all()
        versions = c.execute(
            select(DatasetVersion.version, DatasetVersion.location).order_by(DatasetVersion.version)
        ).all()
    assert len(paths) == 20 and {n for _q, n in paths} == {9}  # each question processed once
    assert [v for v, _loc in versions] == [1, 2]  # a new dataset version each night
    assert all(Path(loc).exists() for _v, loc in versions)
    artifacts = sorted(growth_artifacts(server), key=lambda a: a.created)
    assert [a.flow_run_id for a in artifacts] == [run1.id, run2.id]  # one keyed artifact, versioned per night
    assert "Version **2**" in str(artifacts[1].data) and "| training questions ingested | 8 | 20 |" in str(
        artifacts[1].data
    )
    engine.dispose()

    # the deployment's own guard: a second run while one holds the slot is cancelled, not queued
    from prefect.states import Cancelled, Pending

    first = api(
        server, lambda c: c.create_flow_run_from_deployment(nightly.id, parameters=pipeline["params"])
    )
    second = api(
        server, lambda c: c.create_flow_run_from_deployment(nightly.id, parameters=pipeline["params"])
    )
    try:
        assert api(server, lambda c: c.set_flow_run_state(first.id, Pending())).state.type.value == "PENDING"
        api(server, lambda c: c.set_flow_run_state(second.id, Pending()))
        assert api(server, lambda c: c.read_flow_run(second.id)).state.type.value == "CANCELLED"
    finally:
        for run in (first, second):
            api(server, lambda c, r=run: c.set_flow_run_state(r.id, Cancelled(), force=True))


def _finished(engine: Any) -> set[int]:
    with engine.connect() as c:
        return set(
            c.execute(
                select(QuestionOutcome.question_id).where(
                    QuestionOutcome.status.in_(("accepted", "rejected"))
                )
            ).scalars()
        )


def test_reasonmed_serve_runs_the_deployments_from_one_process(
    prefect_server: PrefectServer,
    pipeline: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The single-machine install: `reasonmed serve` registers the file's deployments and runs them."""
    server = prefect_server
    reasonmed = str(Path(PYTHON).with_name("reasonmed"))
    proc, log = _start(
        [reasonmed, "serve", "--only", "build", "--only", "nightly"],
        server,
        pipeline["url"],
        tmp_path,
        "serve",
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                build = api(server, lambda c: c.read_deployment_by_name("build-dataset/build"))
                nightly = api(server, lambda c: c.read_deployment_by_name("nightly-growth/nightly"))
                # served deployments load their flow by module path (prefect deploy records a file path)
                if (build.entrypoint, nightly.entrypoint) == (
                    "reasonmed.flows.build.build_dataset",
                    "reasonmed.flows.nightly.nightly_growth",
                ):
                    break
            except Exception:
                pass
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        (schedule,) = nightly.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "UTC")
        assert (
            nightly.global_concurrency_limit.limit == 1
            and nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        )

        from reasonmed.ingest.service import ingest_file

        engine = make_engine(pipeline["url"])
        ingest_file(engine, pipeline["inbox"] / "part1.json", "pubmedqa")
        run = api(
            server,
            lambda c: c.create_flow_run_from_deployment(
                build.id, parameters={"limit": 3, "config": pipeline["params"]["config"], "shard_size": 3}
            ),
        )
        (done,) = wait_final(server, [run.id], proc, log)
        assert done.state.type.value == "COMPLETED", log.read_text(errors="replace")[-4000:]
        assert len(_finished(engine)) == 3
        # the serve process gives its runs the pool's logging settings: reasonmed.* lines reach the UI
        assert shipped_retry_line(server, run.id)
        with engine.connect() as c:
            (build_run_id,) = (
                c.execute(select(PipelineRun.id).where(PipelineRun.kind == "build")).scalars().all()
            )
        assert done.name == f"build-run-{build_run_id}"
        engine.dispose()
    finally:
        stop_process(proc)
