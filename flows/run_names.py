"""Flow run names that say what a run is, so the UI's run lists read ``nightly-2026-12-01`` or
``build-run-42`` rather than Prefect's random two-word names.

Each ``*_name`` is a ``flow_run_name`` callable: Prefect calls it once the run's parameters are bound, with
the run's context active, so it reads them through ``prefect.runtime``. A build learns its pipeline run id
only once its run row exists; ``name_current_run`` then renames the run to match the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.context import FlowRunContext
from prefect.runtime import flow_run


def _day() -> str:
    """The UTC day the run was scheduled for (a manual run: the day it was created)."""
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def _minute() -> str:
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d-%H%M")


def nightly_name() -> str:
    return f"nightly-{_day()}" + ("-dry-run" if flow_run.parameters.get("dry_run") else "")


def build_name() -> str:
    """Until the run row exists (then ``build-run-<id>``, see ``name_current_run``)."""
    return f"build-{_minute()}"


def export_name() -> str:
    return f"export-{_minute()}"


def ingest_name() -> str:
    paths = flow_run.parameters.get("paths") or []
    return f"ingest-{flow_run.parameters.get('source')}-{len(paths)}-file" + ("" if len(paths) == 1 else "s")


def eval_name() -> str:
    return f"eval-{flow_run.parameters.get('model_endpoint')}-{_day()}"


def score_name() -> str:
    return f"score-v{flow_run.parameters.get('dataset_version')}-{flow_run.parameters.get('judge_mode', 'rubric')}"


def report_name() -> str:
    return f"audit-report-{_minute()}"


async def name_current_run(name: str) -> None:
    """Rename the current flow run (no-op outside one), e.g. to the pipeline run id it now owns."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        await client.set_flow_run_name(ctx.flow_run.id, name)
    ctx.flow_run.name = name
