"""The dataset-quality flow: a judge model rates a seeded sample of an exported dataset version.

One task per variant (ReasonMed, CoTMed, ResponseMed); every rating is stored with its justification,
and the mean overall score with a 95% interval is published per variant as a keyed table artifact,
so two versions (or two pipeline configs) can be compared on the same footing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from reasonmed.evaluation import scoring
from reasonmed.evaluation.judge_modes import JudgeMode
from reasonmed.evaluation.score_run import ScoreRequest
from reasonmed.evaluation.scoring import Variant
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.outcomes import gather_items
from reasonmed.flows.run import RunContext
from reasonmed.tasks.context import Handle
from reasonmed.tasks.evaluate import score_variant_task


@flow(name="score-dataset", flow_run_name=run_names.score_name, persist_result=False)
async def score_dataset(
    dataset_version: int,
    sample: int = 3000,
    variants: list[Variant] | None = None,
    judge_endpoint: str | None = None,
    seed: int = 0,
    config: str | None = None,
    max_tokens: int = 512,
    judge_mode: JudgeMode = "rubric",
    structured_output: bool = False,
) -> dict[str, Any]:
    """A judge model rates a seeded sample of an exported dataset version.

    Ratings already stored for this version, variant, seed, judge and prompt version are reused, not
    asked for again.

    Args:
        dataset_version: The exported dataset version to rate (table dataset_versions, or an export
            run's result).
        sample: Rows rated per variant.
        variants: Datasets of the version to rate; empty means reasonmed only.
        judge_endpoint: Endpoint (a name in the pipeline config) of the judge model; empty means the
            verifier's endpoint.
        seed: Picks the sample: the same seed always picks the same rows.
        config: Pipeline YAML on the worker; empty means REASONMED_PIPELINE_CONFIG.
        max_tokens: Most completion tokens per rating.
        judge_mode: rubric (criteria scored 1-10 with a justification) or paper (the paper's single
            score).
        structured_output: Hold the rubric ratings to a JSON schema in the judge endpoint's
            structured_dialect; stored apart from free-form ratings.
    """
    log = get_run_logger()
    async with RunContext(config) as run:
        request = await asyncio.to_thread(
            ScoreRequest.resolve,
            run.engine,
            run.cfg,
            dataset_version=dataset_version,
            sample=sample,
            variants=variants,
            judge_endpoint=judge_endpoint,
            seed=seed,
            max_tokens=max_tokens,
            judge_mode=judge_mode,
            structured_output=structured_output,
        )
        run_id = await run.start("score", request.parameters(), request.templates())
        ctx = request.context(run.engine, run.registry, run.cfg, run_id)
        log.info("%s", request.describe(run_id))
        handle = Handle(ctx)
        counts, failures = await gather_items(
            run, "variants", request.variants, lambda v: score_variant_task(handle, v)
        )
        summaries = [await asyncio.to_thread(scoring.variant_summary, ctx, v) for v in request.variants]
    result = request.result(run_id, counts=counts, failures=failures, summaries=summaries)
    with best_effort("dataset quality artifact"):
        await acreate_table_artifact(
            table=result.rows,
            key=f"dataset-quality-v{dataset_version}",
            description=f"score run {run_id}: judge {result.judge_model} ({result.judge_mode} mode), seed {seed}, "
            f"{len(result.sample)} sampled rows; mean overall 1-10 with 95% interval",
        )
    for line in result.lines():
        log.info("%s", line)
    return result.as_dict()
