"""Build runs and the prompt templates they send: a run's row opens and closes here, with the prices
and template texts it ran under, so every stored call can be traced to what produced it."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update

from reasonmed.db.engine import transaction
from reasonmed.db.models import EndpointPrice, PipelineRun, PromptTemplateRow
from reasonmed.db.upsert import insert_ignore
from reasonmed.prompts import PromptTemplate
from reasonmed.redact import redact, redact_data


def now() -> datetime:
    return datetime.now(UTC)


def create_run(
    engine: Engine,
    *,
    kind: str,
    config_hash: str | None,
    config_snapshot: dict[str, Any] | None,
    parameters: dict[str, Any],
    prefect_flow_run_id: str | None,
) -> int:
    # Credentials never reach the table (the audit role reads it): masked here, the one way in.
    with transaction(engine) as s:
        run = PipelineRun(
            kind=kind,
            status="running",
            config_hash=config_hash,
            config_snapshot=redact_data(config_snapshot),
            parameters=redact_data(parameters),
            stats={},
            prefect_flow_run_id=prefect_flow_run_id,
            host=socket.gethostname(),
            started_at=now(),
            heartbeat_at=now(),
        )
        s.add(run)
        s.flush()
        s.add_all(
            EndpointPrice(
                run_id=run.id,
                endpoint=name,
                model=ep.get("model", ""),
                price_input_per_mtok=ep.get("price_input_per_mtok"),
                price_output_per_mtok=ep.get("price_output_per_mtok"),
                batch_price_factor=ep.get("batch_price_factor") if ep.get("mode") == "batch" else None,
            )
            for name, ep in (config_snapshot or {}).get("endpoints", {}).items()
        )
        return run.id


def finish_run(
    engine: Engine, run_id: int, *, status: str, stats: dict[str, Any], error: str | None = None
) -> None:
    with transaction(engine) as s:
        s.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id)
            .values(
                status=status,
                stats=redact_data(stats),
                error=redact(error) if error else error,
                finished_at=now(),
                heartbeat_at=now(),
            )
        )


def ensure_prompt_templates(engine: Engine, templates: Iterable[PromptTemplate]) -> None:
    """Each template text once (by sha256), re-ask variants included, so every recorded sha resolves to its text."""
    rows = [
        {
            "name": t.name,
            "version": t.version,
            "sha256": t.sha256,
            "text": t.text,
            "variant": t.variant,
            "created_at": now(),
        }
        for t in templates
    ]
    with transaction(engine) as s:
        insert_ignore(s, PromptTemplateRow.__table__, rows, ["sha256"])
