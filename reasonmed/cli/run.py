"""``reasonmed run``: the main job — ingest (if given files), build, and leave the database export-ready."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from reasonmed.cli import startup
from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import FileFormat
from reasonmed.cli.common import console, engine_from_settings, err_console
from reasonmed.cli.errors import Mistake
from reasonmed.cli.ingest import ingest as ingest_command
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.cli.temporary_server import quiet_temporary_server_logging
from reasonmed.config import get_settings, load_pipeline_config, temporary_settings
from reasonmed.simulated import SIM_DATABASE_URL


def _progress_table(snap: dict[str, Any]) -> Table:
    t = Table(title="build progress", title_justify="left", show_header=False, box=None)
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_row(
        "questions",
        f"{snap['done']:,} done / {snap['total']:,}  ({snap['in_flight']:,} in flight, "
        f"{snap['failed']:,} failed, {snap.get('set_aside', 0):,} set aside)",
    )
    t.add_row("outcomes", f"{snap['accepted']:,} accepted, {snap['rejected']:,} rejected")
    t.add_row("LLM calls", f"{snap['calls']:,}  ({snap['calls_per_s']:.1f}/s, {snap['retries']:,} retried)")
    t.add_row("tokens", f"{snap['prompt_tokens']:,} in, {snap['completion_tokens']:,} out")
    t.add_row("elapsed", f"{snap['elapsed_s']:.0f} s")
    if "eta" in snap:
        t.add_row("time left", snap["eta"])
    if snap.get("cost_usd") is not None:
        projected = snap.get("projected_cost_usd")
        t.add_row(
            "cost",
            f"${snap['cost_usd']:,.4f} spent"
            + (
                f", ~${projected:,.4f} projected for {snap['total']:,} questions"
                if projected is not None
                else ", projection unknown until more questions settle"
            ),
        )
    return t


def _tier_table(rows: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("tier", "status", "questions", "accepted paths"):
        t.add_column(col, justify="right" if col in ("questions", "accepted paths") else "left")
    for r in rows:
        t.add_row(
            safe_text(r["tier"]),
            safe_text(r["status"]),
            f"{r['questions']:,}",
            f"{r['accepted_paths'] or 0:,}",
        )
    return t


async def _build_with_display(params: dict[str, Any]) -> dict[str, Any]:
    from reasonmed.flows.build import build_dataset, build_result, current_progress
    from reasonmed.pipeline.progress import BuildProgress

    progress = BuildProgress()
    current_progress.set(progress)  # this coroutine's context, which the flow's task copies
    flow_task = asyncio.ensure_future(build_dataset(**params, return_state=True))
    if not console.is_terminal:
        return await build_result(await flow_task)
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not flow_task.done():
            live.update(_progress_table(progress.snapshot()))
            await asyncio.sleep(0.5)
    return await build_result(await flow_task)


@app.command("run", rich_help_panel=PIPELINE)
def run(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Question files to ingest first (optional).", metavar="FILE")
    ] = None,
    source: Annotated[
        FileFormat | None,
        typer.Option(
            "--format",
            "--source",
            "-s",
            help="Format of FILE (see `reasonmed ingest --help`); --source is the old name.",
        ),
    ] = None,
    benchmark_test_ids: Annotated[
        Path | None,
        typer.Option(
            "--benchmark-test-ids",
            metavar="FILE",
            help="Ids of benchmark test items in FILE: never used for training.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Pipeline YAML naming real LLM endpoints (e.g. deploy/pipeline.paper.yaml). "
            "Without it (and without REASONMED_PIPELINE_CONFIG) the bundled simulator is started and used.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(callback=in_range(1), help="Process at most this many questions.")
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--only-source", help="Only questions from this source (repeatable).")
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1), help="Questions per child flow run (default REASONMED_SHARD_SIZE)."
        ),
    ] = None,
    questions_in_flight: Annotated[
        int | None, typer.Option(callback=in_range(1), help="Questions processed at once.")
    ] = None,
    sim_accuracy: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Simulator only: probability a simulated generator answers correctly."
        ),
    ] = 0.6,
    sim_latency_ms: Annotated[
        float, typer.Option(min=0.0, help="Simulator only: simulated base latency per request.")
    ] = 20.0,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
    batch_wait: Annotated[
        float | None,
        typer.Option(
            "--batch-wait",
            metavar="SECONDS",
            min=0.0,
            max=7 * 86400.0,
            help="Endpoints with mode batch: wait up to SECONDS for the batches this run submits and go on with "
            "their questions in the same run (default REASONMED_BATCH_WAIT_S, 0: submit and end; the next run "
            "collects).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the pending questions and, per stage, the calls, tokens, "
            "wall time and cost a run would take; claim, call and write nothing (FILEs are not ingested).",
        ),
    ] = False,
) -> None:
    """Ingest FILEs (if given), then run every unfinished question through generation, verification,
    tiered resolution and summarisation. Safe to re-run: finished work is never redone.

    Every endpoint is asked once before any question is claimed. SIGTERM or Ctrl-C stops the run within
    seconds: claims are released and a rerun resumes exactly where it stopped. A question that fails for
    good (or too often) is set aside and skipped until `reasonmed retry`.

    Exit codes: 0 all claimed work done; 1 questions failed or were set aside; 3 an endpoint is down or
    misconfigured; 4 Prefect's temporary server did not start; 5 a role's output was mostly unusable
    (degraded); 130 interrupted.
    """
    on_simulator = (config or get_settings().pipeline_config) is None
    own_sim_db = (
        on_simulator and database_url is None and "database_url" not in get_settings().model_fields_set
    )
    if own_sim_db:
        database_url = SIM_DATABASE_URL  # simulated work never lands in the database real runs use
    url, engine = engine_from_settings(database_url)
    created = startup.ensure_schema(engine, url)
    if created:
        console.print(safe_text(created))
    if dry_run:
        _dry_run(engine, config or get_settings().pipeline_config, limit, sources, files)
        return
    if files:
        if not source:
            raise Mistake("--format is required with FILE (e.g. --format pubmedqa)")
        ingest_command(
            files=files, source=source, benchmark_test_ids=benchmark_test_ids, database_url=database_url
        )
    startup.require_questions(engine, sources)

    settings = get_settings()
    config_path = config or settings.pipeline_config
    load_pipeline_config(config_path)  # fail on a bad file before anything starts
    prefect_defaults, temporary_server = _prefect_defaults()
    if temporary_server and shard_size is None:
        shard_size = max(settings.shard_size, 1000)
    params: dict[str, Any] = {
        "limit": limit,
        "sources": sources,
        "config": str(config_path) if config_path else None,
        "shard_size": shard_size,
        "questions_in_flight": questions_in_flight,
        "batch_wait_s": batch_wait,
    }
    console.print(safe_text(f"database: {startup.database_label(url)}"))
    if config_path is None:
        from reasonmed.sim.launcher import SimServer

        console.print(
            "[bold yellow]No pipeline config given: starting the bundled SIMULATOR.[/bold yellow] "
            "Its output is simulated text, not real model output (model names start with 'sim/'). "
            "Use --config deploy/pipeline.paper.yaml for real vLLM servers."
        )
        if own_sim_db:
            console.print(
                safe_text(
                    f"Simulated work goes to its own database, {startup.database_label(url)}, never to the one "
                    f"real runs use; look at it with --database-url {url} (export needs --allow-simulated)."
                )
            )
        with SimServer(
            questions_db=url, default_accuracy=sim_accuracy, base_latency_ms=sim_latency_ms, per_token_ms=0.0
        ) as sim:
            console.print(
                safe_text(f"simulator: {sim.base_url} (pid {sim.pid}); it stops when this command ends")
            )
            with temporary_settings(sim_url=sim.base_url):
                result = _run_build(params, prefect_defaults)
        console.print("simulator stopped")
    else:
        console.print(safe_text(f"pipeline config: {config_path}"))
        result = _run_build(params, prefect_defaults)
    _print_result(result, startup.database_label(url), url if own_sim_db else None)


def _dry_run(
    engine: Any,
    config_path: Path | None,
    limit: int | None,
    sources: list[str] | None,
    files: list[Path] | None,
) -> None:
    from reasonmed.cli.dry_run import print_estimate
    from reasonmed.pipeline.dry_run import plan_run

    if files:
        console.print(
            safe_text(
                f"dry run: {len(files)} FILE(s) not ingested; the estimate covers the questions already stored"
            )
        )
    print_estimate(plan_run(engine, load_pipeline_config(config_path), limit=limit, sources=sources), console)


class _ReportedHere(logging.Filter):
    """Drops Prefect's traceback for the ends this command reports itself, in plain lines."""

    NAMES = ("EndpointUnavailable",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and type(record.exc_info[1]).__name__ in self.NAMES:
            return False
        return not any(name in record.getMessage() for name in self.NAMES)


def _prefect_defaults() -> tuple[dict[Any, Any], bool]:
    """Prefect settings for this command, each a default the user's own setting overrides; and whether
    Prefect will start its temporary server (no PREFECT_API_URL)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOGGING_LEVEL,
        PREFECT_LOGGING_SETTINGS_PATH,
        PREFECT_LOGGING_TO_API_ENABLED,
        PREFECT_SERVER_LOGGING_LEVEL,
    )

    defaults: dict[Any, Any] = {
        PREFECT_LOGGING_LEVEL: "WARNING"
    }  # the live display replaces per-task log lines
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


def _run_build(params: dict[str, Any], prefect_defaults: dict[Any, Any]) -> dict[str, Any]:
    """The build's result; a run that did not finish its work still has one (its outcome says why).
    Problems that stop a run before it starts end the command here, in one line each."""
    from prefect.logging.configuration import setup_logging
    from prefect.settings import temporary_settings as prefect_settings

    from reasonmed.flows.stopping import run_stoppable
    from reasonmed.llm.preflight import EndpointUnavailable

    try:
        with prefect_settings(set_defaults=prefect_defaults):
            setup_logging()  # Prefect set its logging up when imported, before these settings
            logging.getLogger("prefect.flow_runs").addFilter(_ReportedHere())
            return run_stoppable(lambda: _build_with_display(params))
    except EndpointUnavailable as exc:
        for check in exc.checks:
            err_console.print(safe_text(f"error: {check.line()}"))
        err_console.print(
            "error: no question was claimed; fix the endpoint(s) above "
            "(`reasonmed config check --ping` asks them again)",
            markup=False,
        )
        raise typer.Exit(3) from None
    except RuntimeError as exc:
        if "ephemeral Prefect API server" in str(exc) or "temporary server" in str(exc):
            from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

            err_console.print(
                safe_text(
                    "error: Prefect's temporary server did not start in time "
                    f"({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()} s); the machine is busy: "
                    "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or point PREFECT_API_URL at a running "
                    "`prefect server start`"
                ),
            )
            raise typer.Exit(4) from None
        raise


def _print_result(result: dict[str, Any], database: str, sim_db: str | None = None) -> None:
    """``sim_db``: the simulator's own database URL, which the next-step commands must name."""
    from reasonmed.pipeline.outcome import BuildOutcome, HeldClaim

    console.print(_progress_table(result))
    if result["report"]["tiers"]:
        console.print(
            _tier_table(result["report"]["tiers"], f"run {result['run_id']}: questions by tier and status")
        )
    for r in result["report"]["rejections"]:
        console.print(safe_text(f"rejected: {r['questions']} x {r['reason']}"))
    for r in result["report"].get("set_aside", [])[:20]:
        err_console.print(
            safe_text(
                f"set aside: question {r['question_id']} at {r['stage']} ({r['last_error_kind']}): "
                f"{str(r['last_error'])[:200]}"
            )
        )
    raw = dict(result["outcome"])
    outcome = BuildOutcome(**{**raw, "held": [HeldClaim(**h) for h in raw.get("held", [])]})
    lines = outcome.lines()
    for line in lines[:-1]:
        console.print(safe_text(line))
    console.print(safe_text(f"database: {database}"))
    if outcome.accepted:
        db, allow = (f" --database-url {sim_db}", " --allow-simulated") if sim_db else ("", "")
        console.print(
            safe_text(
                f"next: `reasonmed audit{db}` (what happened), `reasonmed show{db} QUESTION_ID` (one question), "
                f"`reasonmed export{db}{allow} --out DIR` (the datasets)"
            )
        )
    # The last line is the verdict, on stdout and true to the exit code.
    console.print(safe_text(lines[-1]))
    if not outcome.ok:
        raise typer.Exit(outcome.exit_code)
