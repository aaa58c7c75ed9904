"""``reasonmed run``: the main job — ingest (if given files), build, and leave the database export-ready."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import FileFormat
from reasonmed.cli.common import console, err_console
from reasonmed.cli.ingest import ingest as ingest_command
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import load_pipeline_config
from reasonmed.jobs.build import BuildJob, BuildResult, PrefectDidNotStart, open_database, run_build
from reasonmed.llm.preflight import EndpointUnavailable
from reasonmed.mistake import Mistake
from reasonmed.pipeline.progress import BuildProgress


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


async def _live_display(progress: BuildProgress, flow_task: asyncio.Future[Any]) -> None:
    """The run's counters, refreshed twice a second while the flow runs (on a terminal only)."""
    if not console.is_terminal:
        return
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not flow_task.done():
            live.update(_progress_table(progress.snapshot()))
            await asyncio.sleep(0.5)


@app.command("run", rich_help_panel=PIPELINE)
def run(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Question files to ingest first (optional).", metavar="FILE")
    ] = None,
    file_format: Annotated[
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
    only_sources: Annotated[
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
    nodes: Annotated[
        int | None,
        typer.Option(
            "--nodes",
            min=1,
            max=100_000,
            help="With --dry-run: propose replicas per endpoint for N GPU nodes so that every role finishes "
            "together (from the stored history's engine time, else the pipeline file's limits).",
        ),
    ] = None,
    replicas_per_node: Annotated[
        int,
        typer.Option(
            "--replicas-per-node",
            min=1,
            max=64,
            help="With --nodes: model replicas a node holds (2: a 70B-class model at tensor parallel 4 on 8 GPUs).",
        ),
    ] = 2,
    hosted: Annotated[
        list[str] | None,
        typer.Option(
            "--hosted",
            metavar="ENDPOINT",
            help="With --nodes: an endpoint your nodes do not serve (a hosted API), left out of the plan; "
            "repeat for each.",
        ),
    ] = None,
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
    job = BuildJob(
        config=config,
        limit=limit,
        sources=only_sources,
        shard_size=shard_size,
        questions_in_flight=questions_in_flight,
        batch_wait_s=batch_wait,
        sim_accuracy=sim_accuracy,
        sim_latency_ms=sim_latency_ms,
    )
    if nodes is not None and not dry_run:
        raise Mistake("--nodes plans replicas for a dry run: add --dry-run")
    if hosted and nodes is None:
        raise Mistake("--hosted leaves endpoints out of a replica plan: add --dry-run --nodes N")
    db = open_database(database_url, job)
    if db.created:
        console.print(safe_text(db.created))
    if dry_run:
        _dry_run(db.engine, job.config_path, limit, only_sources, files, nodes, replicas_per_node, hosted)
        return
    if files:
        if not file_format:
            raise Mistake("--format is required with FILE (e.g. --format pubmedqa)")
        ingest_command(
            files=files, file_format=file_format, benchmark_test_ids=benchmark_test_ids, database_url=db.url
        )
    try:
        result = run_build(job, db, note=lambda line: console.print(safe_text(line)), watch=_live_display)
    except EndpointUnavailable as exc:
        for check in exc.checks:
            err_console.print(safe_text(f"error: {check.line()}"))
        err_console.print(
            "error: no question was claimed; fix the endpoint(s) above "
            "(`reasonmed config check --ping` asks them again)",
            markup=False,
        )
        raise typer.Exit(3) from None
    except PrefectDidNotStart as exc:
        err_console.print(safe_text(f"error: {exc}"))
        raise typer.Exit(4) from None
    _print_result(result, db.label, db.url if db.simulator_own else None)


def _dry_run(
    engine: Any,
    config_path: Path | None,
    limit: int | None,
    sources: list[str] | None,
    files: list[Path] | None,
    nodes: int | None = None,
    replicas_per_node: int = 2,
    hosted: list[str] | None = None,
) -> None:
    from reasonmed.cli.dry_run import print_estimate, print_replica_plan
    from reasonmed.pipeline.dry_run import plan_run, plan_work
    from reasonmed.pipeline.replica_plan import plan_replicas

    if files:
        console.print(
            safe_text(
                f"dry run: {len(files)} FILE(s) not ingested; the estimate covers the questions already stored"
            )
        )
    cfg = load_pipeline_config(config_path)
    est = plan_run(engine, cfg, limit=limit, sources=sources)
    print_estimate(est, console)
    if nodes is not None:
        work = plan_work(engine, cfg, est)
        if work is not est:
            console.print(
                safe_text(f"replica plan: no question pending, so planned for {work.pending:,} questions")
            )
        plan = plan_replicas(work, nodes=nodes, replicas_per_node=replicas_per_node, hosted=hosted or ())
        print_replica_plan(plan, console)


def _print_result(result: BuildResult, database: str, sim_db: str | None = None) -> None:
    """``sim_db``: the simulator's own database URL, which the next-step commands must name."""
    console.print(_progress_table(result.counters))
    if result.report["tiers"]:
        console.print(
            _tier_table(result.report["tiers"], f"run {result.run_id}: questions by tier and status")
        )
    for r in result.report["rejections"]:
        console.print(safe_text(f"rejected: {r['questions']} x {r['reason']}"))
    for r in result.report.get("set_aside", [])[:20]:
        err_console.print(
            safe_text(
                f"set aside: question {r['question_id']} at {r['stage']} ({r['last_error_kind']}): "
                f"{str(r['last_error'])[:200]}"
            )
        )
    outcome = result.outcome
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
