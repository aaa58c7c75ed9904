"""Prefect tasks of the evaluation and scoring flows: one per benchmark, one per dataset variant.

Like the build tasks they take the run's context in a ``Handle`` (``tasks/context.py``) and a name:
the engine, config and LLM clients (with their per-endpoint caps) are the run's own. Nothing is
persisted or cached by Prefect; a retry redoes only what the database does not hold yet.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from reasonmed.evaluation import runner, scoring
from reasonmed.evaluation.runner import EvalContext
from reasonmed.evaluation.scoring import ScoreContext
from reasonmed.tasks.context import Handle, provenance
from reasonmed.tasks.retry import task_options

_TASK_OPTIONS: dict[str, Any] = task_options(retries=2)


@task(name="evaluate-benchmark", task_run_name="evaluate {benchmark}", **_TASK_OPTIONS)
async def evaluate_benchmark_task(run: Handle[EvalContext], benchmark: str) -> dict[str, int]:
    result = await runner.evaluate_benchmark(run.value, benchmark, provenance())
    return result.counts()


@task(name="score-variant", task_run_name="score {variant}", **_TASK_OPTIONS)
async def score_variant_task(run: Handle[ScoreContext], variant: str) -> dict[str, int]:
    return await scoring.score_variant(run.value, variant, provenance())
