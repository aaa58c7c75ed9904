"""The evaluation flow: a served model's accuracy on the benchmark test items stored in the database.

Zero-shot chain of thought with the ``evaluate`` prompt (which never carries the answer), answers read
by ``reasonmed.parsing.extract_answer``, every prediction stored with its model, prompt version, raw
output and verdict. Accuracy per benchmark and per MMLU subset, with 95% Wilson intervals, is
computed from the stored rows and published as a keyed table artifact (and optionally a CSV).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from reasonmed.evaluation import report
from reasonmed.evaluation.benchmarks import BenchmarkName
from reasonmed.evaluation.eval_run import EvalRequest, EvalResult, measure_accuracy
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.outcomes import gather_items
from reasonmed.flows.run import RunContext
from reasonmed.tasks.context import Handle
from reasonmed.tasks.evaluate import evaluate_benchmark_task


def artifact_key(prefix: str, name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model")


@flow(name="evaluate-model", flow_run_name=run_names.eval_name, persist_result=False)
async def evaluate_model(
    model_endpoint: str,
    benchmarks: list[BenchmarkName] | None = None,
    limit: int | None = None,
    config: str | None = None,
    out: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 4096,
    structured_output: bool = False,
) -> dict[str, Any]:
    """Accuracy of a served model on the benchmark test items stored in the database.

    Predictions already stored for this model and prompt version are not asked again.

    Args:
        model_endpoint: The endpoint (a name under endpoints in the pipeline config) serving the model
            to evaluate.
        benchmarks: Benchmarks to evaluate on; empty means all of them.
        limit: First N test items per benchmark (id order, so repeated runs cover the same items);
            empty means all.
        config: Pipeline YAML on the worker; empty means REASONMED_PIPELINE_CONFIG.
        out: Also write the accuracy table to this CSV path on the worker.
        temperature: Sampling temperature (0 = greedy).
        max_tokens: Most completion tokens per answer.
        structured_output: Ask for a JSON reply held to a schema (reasoning, answer) in the endpoint's
            structured_dialect; stored apart from free-form predictions.
    """
    log = get_run_logger()
    async with RunContext(config) as run:
        request = EvalRequest.resolve(
            run.cfg,
            model_endpoint=model_endpoint,
            benchmarks=benchmarks,
            limit=limit,
            temperature=temperature,
            max_tokens=max_tokens,
            structured_output=structured_output,
        )
        run_id = await run.start("eval", request.parameters(), request.templates())
        ctx = request.context(run.engine, run.registry, base_seed=run.cfg.seed, run_id=run_id)
        log.info("%s", request.describe(run_id))
        handle = Handle(ctx)
        counts, failures = await gather_items(
            run, "benchmarks", request.names, lambda name: evaluate_benchmark_task(handle, name)
        )
        rows = await asyncio.to_thread(measure_accuracy, ctx, request.names)
    result = request.finish(run_id, rows, counts=counts, failures=failures, out=out)
    await _publish(result, request)
    for line in result.lines():
        log.info("%s", line)
    return result.as_dict()


async def _publish(result: EvalResult, request: EvalRequest) -> None:
    """Keyed by model, so each model's artifacts show their history across runs in the UI."""
    model, run_id = result.model, result.run_id
    with best_effort("eval reference artifact"):
        await acreate_markdown_artifact(
            markdown=f"## {model}: the paper vs this model (eval run {run_id})\n\n{result.reference}",
            key=artifact_key("eval-reference", model),
            description=f"docs/evaluation.md's reference table, filled for {model}",
        )
    with best_effort("eval table artifact"):
        await acreate_table_artifact(
            table=report.artifact_rows(result.rows),
            key=artifact_key("eval", model),
            description=f"eval run {run_id}: accuracy of {model} (endpoint {request.model_endpoint}, prompt "
            f"{request.template.version}) with 95% Wilson intervals",
        )
