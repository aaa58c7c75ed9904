"""Prefect tasks of the evaluation and scoring flows: one per benchmark, one per dataset variant.

Like the build tasks they take only a runtime key and a name: the engine, config and LLM clients (with
their per-endpoint caps) live once per process in ``EVAL_RUNTIMES`` / ``SCORE_RUNTIMES``. Nothing is
persisted or cached by Prefect; a retry redoes only what the database does not hold yet.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import FlowRunContext, TaskRunContext

from reasonmed.evaluation import runner, scoring
from reasonmed.evaluation.runner import EvalContext
from reasonmed.evaluation.scoring import ScoreContext
from tasks.retry import task_options

EVAL_RUNTIMES: dict[str, EvalContext] = {}
SCORE_RUNTIMES: dict[str, ScoreContext] = {}

_TASK_OPTIONS: dict[str, Any] = task_options(retries=2)


def _provenance() -> dict[str, Any]:
    task_ctx, flow_ctx = TaskRunContext.get(), FlowRunContext.get()
    return {
        "prefect_task_run_id": str(task_ctx.task_run.id) if task_ctx else None,
        "prefect_flow_run_id": str(flow_ctx.flow_run.id) if flow_ctx and flow_ctx.flow_run else None,
    }


@task(name="evaluate-benchmark", task_run_name="evaluate {benchmark}", **_TASK_OPTIONS)
async def evaluate_benchmark_task(runtime_key: str, benchmark: str) -> dict[str, int]:
    run = await runner.evaluate_benchmark(EVAL_RUNTIMES[runtime_key], benchmark, _provenance())
    return run.counts()


@task(name="score-variant", task_run_name="score {variant}", **_TASK_OPTIONS)
async def score_variant_task(runtime_key: str, variant: str) -> dict[str, int]:
    return await scoring.score_variant(SCORE_RUNTIMES[runtime_key], variant, _provenance())
