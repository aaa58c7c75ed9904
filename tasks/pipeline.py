"""Per-question Prefect tasks: one per stage, named after the question.

Tasks take only a runtime key and a question id: the heavy objects (engine, config, LLM clients with
their per-endpoint caps) live once per process in ``RUNTIMES``, so task parameters stay tiny and every
task shares the same connection pools and semaphores. Results are not persisted and nothing is cached:
Postgres is the store, and each stage reads it to decide what is missing.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import FlowRunContext, TaskRunContext

from reasonmed.pipeline import stages
from reasonmed.pipeline.stages import StageContext
from tasks.retry import task_options

RUNTIMES: dict[str, StageContext] = {}

_TASK_OPTIONS: dict[str, Any] = task_options(retries=2)  # database blips only (tasks/retry.py)


def _context(runtime_key: str) -> tuple[StageContext, dict[str, Any]]:
    ctx = RUNTIMES[runtime_key]
    task_ctx, flow_ctx = TaskRunContext.get(), FlowRunContext.get()
    prov = {
        "run_id": ctx.run_id,
        "prefect_task_run_id": str(task_ctx.task_run.id) if task_ctx else None,
        "prefect_flow_run_id": str(flow_ctx.flow_run.id) if flow_ctx and flow_ctx.flow_run else None,
    }
    return ctx, prov


@task(name="generate", task_run_name="generate q{question_id}", **_TASK_OPTIONS)
async def generate_task(runtime_key: str, question_id: int) -> int:
    ctx, prov = _context(runtime_key)
    return await stages.generate(ctx, question_id, prov)


@task(name="verify", task_run_name="verify q{question_id}", **_TASK_OPTIONS)
async def verify_task(runtime_key: str, question_id: int) -> None:
    ctx, prov = _context(runtime_key)
    await stages.verify(ctx, question_id, prov)


@task(name="resolve", task_run_name="resolve q{question_id}", **_TASK_OPTIONS)
async def resolve_task(runtime_key: str, question_id: int) -> str:
    ctx, prov = _context(runtime_key)
    return await stages.resolve(ctx, question_id, prov)


@task(name="summarize", task_run_name="summarize q{question_id}", **_TASK_OPTIONS)
async def summarize_task(runtime_key: str, question_id: int) -> str | None:
    ctx, prov = _context(runtime_key)
    return await stages.summarize(ctx, question_id, prov)
