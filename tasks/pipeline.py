"""Per-question Prefect tasks: one per stage, named after the question.

Tasks take the run's stage context (engine, config, LLM clients with their per-endpoint caps) in a
``Handle``, a question id, and the question's carried state (``stages.Carried``, read once per shard):
every task of the run shares the same connection pools, semaphores and batched writer, and Prefect does
not walk what a handle holds (``tasks/context.py``). Results are not persisted and nothing is cached:
Postgres is the store, and each stage does only what it holds no record of.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from reasonmed.pipeline import stages
from reasonmed.pipeline.stages import Carried, StageContext
from reasonmed.tasks.context import Handle, provenance
from reasonmed.tasks.retry import task_options

_TASK_OPTIONS: dict[str, Any] = task_options(retries=2)  # database blips only (tasks/retry.py)


def _value(carried: Handle[Carried] | None) -> Carried | None:
    return carried.value if carried is not None else None


def _provenance(ctx: StageContext) -> dict[str, Any]:
    return {"run_id": ctx.run_id, **provenance()}


@task(name="generate", task_run_name="generate q{question_id}", **_TASK_OPTIONS)
async def generate_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> int:
    return await stages.generate(run.value, question_id, _provenance(run.value), _value(carried))


@task(name="verify", task_run_name="verify q{question_id}", **_TASK_OPTIONS)
async def verify_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> None:
    await stages.verify(run.value, question_id, _provenance(run.value), _value(carried))


@task(name="resolve", task_run_name="resolve q{question_id}", **_TASK_OPTIONS)
async def resolve_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> str:
    return await stages.resolve(run.value, question_id, _provenance(run.value), _value(carried))


@task(name="summarize", task_run_name="summarize q{question_id}", **_TASK_OPTIONS)
async def summarize_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> str | None:
    return await stages.summarize(run.value, question_id, _provenance(run.value), _value(carried))
