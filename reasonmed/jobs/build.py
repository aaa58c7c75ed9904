"""The main job: open the database, start the simulator when no endpoints are configured, run the build flow
(stoppable by SIGTERM/SIGINT) and hand back its typed result.

``reasonmed run`` and ``reasonmed.build`` call ``open_database`` and ``run_build``; they differ only in how
they show progress and the result. A run that ended without doing all its work still returns its result
(``result.outcome`` says why); what stops a run before it starts raises: a ``Mistake`` (what to fix),
``EndpointUnavailable`` (which endpoint), ``PrefectDidNotStart``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from reasonmed.config import get_settings, load_pipeline_config, override_settings, temporary_settings
from reasonmed.db.engine import get_engine
from reasonmed.jobs import startup
from reasonmed.jobs.temporary_server import quiet_temporary_server_logging
from reasonmed.pipeline.outcome import BuildOutcome
from reasonmed.pipeline.progress import BuildProgress
from reasonmed.simulated import SIM_DATABASE_URL

Note = Callable[[str], None]
"""A line for the user (what was started, where things are): printed by the CLI, dropped by the API."""
Watch = Callable[[BuildProgress, "asyncio.Future[Any]"], Awaitable[None]]
"""A display of the run's counters, running until the flow's future is done."""


class PrefectDidNotStart(RuntimeError):
    """Prefect's temporary server did not come up in time (exit code 4)."""


@dataclass(frozen=True)
class Database:
    """The database a build works in, as chosen and prepared by ``open_database``."""

    url: str
    engine: Engine
    label: str  # as a user finds it: a file path, or the URL without credentials
    simulator_own: bool  # the simulator's own database (never the one real runs use)
    created: str | None = None  # a line saying a new SQLite database was created and migrated


@dataclass(frozen=True)
class BuildJob:
    config: Path | None = None  # pipeline YAML; None: REASONMED_PIPELINE_CONFIG, else the bundled simulator
    limit: int | None = None
    sources: list[str] | None = None
    shard_size: int | None = None
    questions_in_flight: int | None = None
    batch_wait_s: float | None = None
    sim_accuracy: float = 0.6  # simulator only: probability a simulated generator answers correctly
    sim_latency_ms: float = 20.0  # simulator only: base latency per request

    @property
    def config_path(self) -> Path | None:
        return self.config or get_settings().pipeline_config

    @property
    def on_simulator(self) -> bool:
        return self.config_path is None


@dataclass(frozen=True)
class BuildResult:
    """What ``build_dataset`` returned, typed: its outcome, its report tables and its final counters."""

    outcome: BuildOutcome
    report: dict[str, list[dict[str, Any]]]
    counters: dict[str, Any] = field(default_factory=dict)  # the progress snapshot, statuses, shards

    @property
    def run_id(self) -> int:
        return self.outcome.run_id

    @classmethod
    def of(cls, data: dict[str, Any]) -> BuildResult:
        counters = {k: v for k, v in data.items() if k not in ("outcome", "report")}
        return cls(BuildOutcome.from_dict(data["outcome"]), data["report"], counters)


class BuildIncomplete(RuntimeError):
    """The run ended without doing all its work (``result.outcome`` says why and what is left)."""

    def __init__(self, result: BuildResult) -> None:
        super().__init__(result.outcome.verdict())
        self.result = result


def open_database(database_url: str | None, job: BuildJob) -> Database:
    """The database named (``--database-url``, else REASONMED_DATABASE_URL), or for a simulated run without
    one, the simulator's own; a new SQLite file is created and migrated. The choice holds for the rest of
    the command (its settings scope), flows included."""
    simulator_own = (
        job.on_simulator and database_url is None and "database_url" not in get_settings().model_fields_set
    )
    if simulator_own:
        database_url = SIM_DATABASE_URL  # simulated work never lands in the database real runs use
    if database_url:
        override_settings(database_url=database_url)
    url = get_settings().database_url
    engine = get_engine(url)
    created = startup.ensure_schema(engine, url)
    return Database(url, engine, startup.database_label(url), simulator_own, created)


def run_build(
    job: BuildJob, db: Database, *, note: Note = lambda _line: None, watch: Watch | None = None
) -> BuildResult:
    """Run the build flow on ``db`` and return its result; see the module's docstring for what raises."""
    startup.require_questions(db.engine, job.sources)
    config_path = job.config_path
    load_pipeline_config(config_path)  # fail on a bad file before anything starts
    prefect_defaults, temporary_server = prefect_defaults_for_a_command()
    params: dict[str, Any] = {
        "limit": job.limit,
        "sources": job.sources,
        "config": str(config_path) if config_path else None,
        # The temporary server records task events slowly: fewer, larger child flow runs spare it.
        "shard_size": job.shard_size
        if job.shard_size is not None or not temporary_server
        else max(get_settings().shard_size, 1000),
        "questions_in_flight": job.questions_in_flight,
        "batch_wait_s": job.batch_wait_s,
    }
    note(f"database: {db.label}")
    if config_path is not None:
        note(f"pipeline config: {config_path}")
        return _run_flow(params, prefect_defaults, watch)
    from reasonmed.sim.launcher import SimServer

    note(
        "No pipeline config given: starting the bundled SIMULATOR. Its output is simulated text, not real "
        "model output (model names start with 'sim/'). Use --config deploy/pipeline.paper.yaml for real vLLM "
        "servers."
    )
    if db.simulator_own:
        note(
            f"Simulated work goes to its own database, {db.label}, never to the one real runs use; look at it "
            f"with --database-url {db.url} (export needs --allow-simulated)."
        )
    with SimServer(
        questions_db=db.url,
        default_accuracy=job.sim_accuracy,
        base_latency_ms=job.sim_latency_ms,
        per_token_ms=0.0,
    ) as sim:
        note(f"simulator: {sim.base_url} (pid {sim.pid}); it stops when this command ends")
        with temporary_settings(sim_url=sim.base_url):
            result = _run_flow(params, prefect_defaults, watch)
    note("simulator stopped")
    return result


class _ReportedHere(logging.Filter):
    """Drops Prefect's traceback for the ends the caller reports itself, in plain lines."""

    NAMES = ("EndpointUnavailable",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and type(record.exc_info[1]).__name__ in self.NAMES:
            return False
        return not any(name in record.getMessage() for name in self.NAMES)


def prefect_defaults_for_a_command() -> tuple[dict[Any, Any], bool]:
    """Prefect settings for a run started from a command or a notebook, each a default the user's own
    setting overrides; and whether Prefect will start its temporary server (no PREFECT_API_URL)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOGGING_LEVEL,
        PREFECT_LOGGING_SETTINGS_PATH,
        PREFECT_LOGGING_TO_API_ENABLED,
        PREFECT_SERVER_LOGGING_LEVEL,
    )

    defaults: dict[Any, Any] = {PREFECT_LOGGING_LEVEL: "WARNING"}  # the live display replaces per-task lines
    temporary_server = not PREFECT_API_URL.value()
    if temporary_server:
        # No Prefect server configured: Prefect starts a temporary one on SQLite, which records task events
        # several times slower than a Postgres-backed server. Spare it log shipping and child-flow churn.
        defaults[PREFECT_LOGGING_TO_API_ENABLED] = False
        # Prefect 3.9's temporary server cancels its task-run recorder mid-flush when it is stopped at exit
        # and prints tracebacks about its own bookkeeping (the pipeline's rows are in its database by then).
        defaults[PREFECT_SERVER_LOGGING_LEVEL] = "CRITICAL"
        logging_file = quiet_temporary_server_logging(PREFECT_HOME.value())
        if logging_file is not None:
            defaults[PREFECT_LOGGING_SETTINGS_PATH] = logging_file
    return defaults, temporary_server


def _run_flow(params: dict[str, Any], prefect_defaults: dict[Any, Any], watch: Watch | None) -> BuildResult:
    from prefect.logging.configuration import setup_logging
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    from prefect.settings import temporary_settings as prefect_settings

    from reasonmed.flows.stopping import run_stoppable

    try:
        with prefect_settings(set_defaults=prefect_defaults):
            setup_logging()  # Prefect set its logging up when imported, before these settings
            logging.getLogger("prefect.flow_runs").addFilter(_ReportedHere())
            return BuildResult.of(run_stoppable(lambda: _watched_build(params, watch)))
    except RuntimeError as exc:
        if "ephemeral Prefect API server" in str(exc) or "temporary server" in str(exc):
            raise PrefectDidNotStart(
                "Prefect's temporary server did not start in time "
                f"({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()} s); the machine is busy: "
                "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or point PREFECT_API_URL at a running "
                "`prefect server start`"
            ) from None
        raise


async def _watched_build(params: dict[str, Any], watch: Watch | None) -> dict[str, Any]:
    from reasonmed.flows.build import build_dataset, build_result, current_progress

    progress = BuildProgress()
    current_progress.set(progress)  # this coroutine's context, which the flow's task copies
    flow_task = asyncio.ensure_future(build_dataset(**params, return_state=True))
    if watch is not None:
        await watch(progress, flow_task)
    return await build_result(await flow_task)
