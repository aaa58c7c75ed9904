"""``reasonmed rejudge``: re-run verification, ranking or summarisation over stored paths under the current
configuration, and re-derive the tiers, acceptances and summaries that change (nothing is generated)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import RejudgeStage
from reasonmed.cli.common import console, engine_from_settings
from reasonmed.cli.ranges import check, in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import PipelineConfig, get_settings, load_pipeline_config, temporary_settings
from reasonmed.db import migrate, runs_repo
from reasonmed.db.reopen_repo import QuestionFilter
from reasonmed.pipeline.context import StageContext
from reasonmed.pipeline.rejudge import RejudgeResult, rejudge

# --where KEY=VALUE: the filters a re-judging pass accepts (values are bound parameters, never SQL).
WHERE_KEYS = {"question_id": int, "source": str, "tier": str, "status": str, "run_id": int}
_TIERS, _STATUSES = ("easy", "medium", "difficult"), ("accepted", "rejected")


def parse_where(items: list[str]) -> QuestionFilter:
    """``["source=medqa", "tier=easy", "tier=medium"]`` -> a QuestionFilter (repeated keys mean "any of")."""
    values: dict[str, list[object]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in WHERE_KEYS or not raw:
            raise typer.BadParameter(
                f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(WHERE_KEYS)}", param_hint="--where"
            )
        try:
            value = WHERE_KEYS[key](raw)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: {key} must be a number", param_hint="--where") from None
        if isinstance(value, int):
            check(f"--where {key}=", value)
        allowed = {"tier": _TIERS, "status": _STATUSES}.get(key)
        if allowed and value not in allowed:
            raise typer.BadParameter(
                f"{item!r}: {key} must be one of {', '.join(allowed)}", param_hint="--where"
            )
        values.setdefault(key, []).append(value)

    def get(k: str) -> tuple[Any, ...] | None:  # each key's values have its WHERE_KEYS type
        return tuple(values[k]) if k in values else None

    return QuestionFilter(
        question_ids=get("question_id"),
        sources=get("source"),
        tiers=get("tier"),
        statuses=get("status"),
        run_ids=get("run_id"),
    )


@app.command("rejudge", rich_help_panel=PIPELINE)
def rejudge_cmd(
    stage: Annotated[RejudgeStage, typer.Option("--stage", help="The stage to re-run.")],
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            metavar="KEY=VALUE",
            help=f"Only these finished questions (repeatable; keys: {', '.join(WHERE_KEYS)}; a repeated key means any of).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Pipeline YAML (default REASONMED_PIPELINE_CONFIG, "
            "else the bundled simulator, started for the command).",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(callback=in_range(1, 10_000), help="Questions re-judged at once.")
    ] = 32,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """Re-judge stored paths with the current verifier, ranker or summariser (model and prompt) and re-derive
    what their new results imply: tiers and acceptances (verify, rank) and summaries. Nothing is generated;
    old verdicts, scores, summaries and accepted paths stay, marked superseded. Change the prompt or model in
    the pipeline file first: questions already judged under the configured key are left alone.
    """
    stage = str(stage)
    filters = parse_where(where or [])
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    config_path = config or get_settings().pipeline_config
    cfg = load_pipeline_config(config_path)
    if config_path is None:
        from reasonmed.sim.launcher import SimServer

        console.print(
            "no pipeline config: re-judging with the bundled SIMULATOR (simulated output, models 'sim/...')"
        )
        with (
            SimServer(questions_db=url, base_latency_ms=0.0, per_token_ms=0.0) as sim,
            temporary_settings(sim_url=sim.base_url),
        ):
            result = _run(engine, load_pipeline_config(None), stage, filters, concurrency)
    else:
        result = _run(engine, cfg, stage, filters, concurrency)
    for line in result.lines():
        console.print(safe_text(line))  # quotes failures: model and server text
    if result.failed:
        raise typer.Exit(1)


def _run(
    engine: Engine, cfg: PipelineConfig, stage: str, filters: QuestionFilter, concurrency: int
) -> RejudgeResult:
    from reasonmed.llm.registry import LLMRegistry

    run_id = runs_repo.create_run(
        engine,
        kind="rejudge",
        config_hash=cfg.config_hash,
        config_snapshot=cfg.snapshot(),
        parameters={"stage": stage, "where": filters.__dict__, "concurrency": concurrency},
        prefect_flow_run_id=None,
    )

    async def go() -> RejudgeResult:
        registry = LLMRegistry(cfg)
        try:
            ctx = StageContext(engine=engine, cfg=cfg, backends=registry, run_id=run_id)
            return await rejudge(ctx, stage=stage, where=filters, concurrency=concurrency)
        finally:
            await registry.aclose()

    try:
        result = asyncio.run(go())
    except BaseException as exc:
        runs_repo.finish_run(
            engine,
            run_id,
            status="failed",
            stats={},
            error=str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__,
        )
        raise
    stats = {
        "reopened": result.reopened,
        "finished": result.finished,
        "failed": len(result.failed),
        "acceptance_changed": result.acceptance_changed,
        "stale": result.stale,
        "tier_changes": {f"{a}->{b}": n for (a, b), n in result.tier_changes.items()},
        "status_changes": {f"{a}->{b}": n for (a, b), n in result.status_changes.items()},
    }
    runs_repo.finish_run(engine, run_id, status="completed" if not result.failed else "failed", stats=stats)
    return result
