"""Per-question Prefect tasks: one per stage, named after the question.

Tasks take the run's stage context (engine, config, LLM clients with their per-endpoint caps) in a
``Handle``, a question id, and the question's carried state (``Carried`` of ``pipeline/context.py``, read
once per shard): every task of the run shares the same connection pools, semaphores and batched writer,
and Prefect does not walk what a handle holds (``tasks/context.py``). Results are not persisted and nothing is cached:
Postgres is the store, and each stage does only what it holds no record of.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from prefect import task

from reasonmed.pipeline import stages
from reasonmed.pipeline.context import Carried, StageContext
from reasonmed.pipeline.failures import StageIncomplete, Waiting
from reasonmed.tasks.context import Handle, provenance
from reasonmed.tasks.retry import task_options

T = TypeVar("T")
_TASK_OPTIONS: dict[str, Any] = task_options(retries=2)  # database blips only (tasks/retry.py)


async def _waitable(stage: Awaitable[T]) -> T | Waiting:
    """The stage's result; for a question that waits on batch results, a ``Waiting``: the task ends Completed
    (raising would end it Failed and log an error for what is no failure)."""
    try:
        return await stage
    except StageIncomplete as exc:
        if not exc.waiting:
            raise
        return Waiting(str(exc))


def _value(carried: Handle[Carried] | None) -> Carried | None:
    return carried.value if carried is not None else None


@task(name="generate", task_run_name="generate q{question_id}", **_TASK_OPTIONS)
async def generate_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> int | Waiting:
    return await _waitable(
        stages.generate(run.value, question_id, provenance(run.value.run_id), _value(carried))
    )


@task(name="verify", task_run_name="verify q{question_id}", **_TASK_OPTIONS)
async def verify_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> Waiting | None:
    return await _waitable(
        stages.verify(run.value, question_id, provenance(run.value.run_id), _value(carried))
    )


@task(name="resolve", task_run_name="resolve q{question_id}", **_TASK_OPTIONS)
async def resolve_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> str | Waiting:
    return await _waitable(
        stages.resolve(run.value, question_id, provenance(run.value.run_id), _value(carried))
    )


@task(name="summarize", task_run_name="summarize q{question_id}", **_TASK_OPTIONS)
async def summarize_task(
    run: Handle[StageContext], question_id: int, carried: Handle[Carried] | None = None
) -> str | Waiting | None:
    return await _waitable(
        stages.summarize(run.value, question_id, provenance(run.value.run_id), _value(carried))
    )
