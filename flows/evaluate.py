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

from reasonmed.agents.base import Sampling
from reasonmed.config import ConfigError
from reasonmed.evaluation import report
from reasonmed.evaluation.benchmarks import BenchmarkName, parse_benchmarks
from reasonmed.evaluation.runner import EvalContext, benchmark_accuracy, select_questions
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.outcomes import gather_items
from reasonmed.flows.run import RunContext
from reasonmed.prompts import get_template
from reasonmed.structured_output import ANSWER_SCHEMA, constrained_template, format_for
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
    logger = get_run_logger()
    async with RunContext(config) as run:
        cfg = run.cfg
        if model_endpoint not in cfg.endpoints:
            raise ConfigError(
                f"--model-endpoint: unknown endpoint {model_endpoint!r} (known: {', '.join(sorted(cfg.endpoints))})"
            )
        chosen = parse_benchmarks(benchmarks)
        endpoint_cfg = cfg.endpoints[model_endpoint]
        fmt = format_for(structured_output, endpoint_cfg.structured_dialect, "answer", ANSWER_SCHEMA)
        template = (
            constrained_template(get_template("evaluate"), ANSWER_SCHEMA) if fmt else get_template("evaluate")
        )
        model = endpoint_cfg.model
        params = {
            "model_endpoint": model_endpoint,
            "model": model,
            "benchmarks": [b.name for b in chosen],
            "limit": limit,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "prompt_sha256": template.sha256,
            "structured_output": structured_output,
        }
        run_id = await run.start(
            "eval", params, [template, template.reask("truncated"), template.reask("unparseable")]
        )
        ctx = EvalContext(
            engine=run.engine,
            backends=run.registry,
            endpoint=model_endpoint,
            model=model,
            sampling=Sampling(temperature=temperature, top_p=1.0, max_tokens=max_tokens, response_format=fmt),
            base_seed=cfg.seed,
            limit=limit,
            run_id=run_id,
            template=template,
        )
        logger.info(
            "eval run %s: %s (%s) on %s, prompt %s",
            run_id,
            model_endpoint,
            model,
            ", ".join(b.name for b in chosen),
            template.version,
        )
        handle = Handle(ctx)
        counts, failures = await gather_items(
            run, "benchmarks", [b.name for b in chosen], lambda name: evaluate_benchmark_task(handle, name)
        )
        rows: list[report.AccuracyRow] = []
        for b in chosen:
            selected = await asyncio.to_thread(select_questions, ctx, b.name)
            rows.extend(await asyncio.to_thread(benchmark_accuracy, ctx, b.name, selected))
    table = [r.as_dict() for r in rows]
    reference = report.reference_markdown(rows, model)
    csv_path = str(report.write_csv(out, rows)) if out else None
    if out:
        report.reference_path(out).write_text(reference, encoding="utf-8")
    with best_effort("eval reference artifact"):
        await acreate_markdown_artifact(
            markdown=f"## {model}: the paper vs this model (eval run {run_id})\n\n{reference}",
            key=artifact_key("eval-reference", model),
            description=f"docs/evaluation.md's reference table, filled for {model}",
        )
    with best_effort("eval table artifact"):
        await acreate_table_artifact(
            table=report.artifact_rows(rows),
            key=artifact_key("eval", model),
            description=f"eval run {run_id}: accuracy of {model} (endpoint {model_endpoint}, prompt "
            f"{template.version}) with 95% Wilson intervals",
        )
    for r in rows:
        if r.subset == report.ALL:
            acc = "n/a" if r.accuracy is None else f"{100 * r.accuracy:.2f}%"
            logger.info("%s: %s (%s/%s, %s selected)", r.benchmark, acc, r.correct, r.n, r.selected)
    return {
        "run_id": run_id,
        "model": model,
        "endpoint": model_endpoint,
        "prompt_sha256": template.sha256,
        "rows": table,
        "counts": counts,
        "failures": failures,
        "csv": csv_path,
        "reference": reference,
    }
