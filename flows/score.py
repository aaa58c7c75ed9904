"""The dataset-quality flow: a judge model rates a seeded sample of an exported dataset version.

One task per variant (ReasonMed, CoTMed, ResponseMed); every rating is stored with its justification,
and the mean overall score with a 95% interval is published per variant as a keyed table artifact,
so two versions (or two pipeline configs) can be compared on the same footing.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from reasonmed.agents.base import Sampling
from reasonmed.config import ConfigError
from reasonmed.db import eval_repo
from reasonmed.evaluation import scoring
from reasonmed.evaluation.judge_modes import JudgeMode, judge_spec
from reasonmed.evaluation.scoring import ScoreContext, Variant
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.outcomes import gather_items
from reasonmed.flows.run import RunContext
from reasonmed.structured_output import JUDGE_SCHEMA, constrained_template, format_for
from reasonmed.tasks.context import Handle
from reasonmed.tasks.evaluate import score_variant_task


class UnknownDatasetVersion(LookupError):
    pass


def _summary_rows(summaries: list[scoring.VariantSummary]) -> list[dict[str, Any]]:
    def r2(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return [
        {
            "version": s.version,
            "variant": s.variant,
            "sampled": s.sampled,
            "scored": s.scored,
            "unparseable": s.unparseable,
            "mean_overall": r2(s.overall.mean),
            "ci95_low": r2(s.overall.low),
            "ci95_high": r2(s.overall.high),
            **{c: r2(v) for c, v in s.criteria.items()},
            "judge_model": s.judge_model,
            "judge_mode": s.judge_mode,
            "seed": s.sample_seed,
            "prompt_version": s.prompt_sha256[:12],
        }
        for s in summaries
    ]


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
    logger = get_run_logger()
    async with RunContext(config) as run:
        cfg, engine = run.cfg, run.engine
        judge = judge_endpoint or cfg.agents.verifier.endpoint
        if judge not in cfg.endpoints:
            raise ConfigError(
                f"--judge-endpoint: unknown endpoint {judge!r} (known: {', '.join(sorted(cfg.endpoints))})"
            )
        chosen = scoring.parse_variants(variants)
        version = await asyncio.to_thread(eval_repo.find_dataset_version, engine, dataset_version)
        if version is None:
            raise UnknownDatasetVersion(
                f"dataset version {dataset_version} does not exist (table dataset_versions; `reasonmed export` writes one)"
            )
        keys = await asyncio.to_thread(eval_repo.dataset_sample_keys, engine, version.id)
        picked = scoring.select_sample(keys, sample, seed) if keys else []
        spec = judge_spec(judge_mode)
        fmt = None
        if structured_output:
            if spec.mode != "rubric":
                raise ConfigError(
                    "--structured-output holds the rubric judge's ratings to a schema; "
                    "the paper judge mode gives one free-form score"
                )
            fmt = format_for(True, cfg.endpoints[judge].structured_dialect, "ratings", JUDGE_SCHEMA)
            spec = replace(spec, template=constrained_template(spec.template, JUDGE_SCHEMA))
        template = spec.template
        judge_model = cfg.endpoints[judge].model
        params = {
            "dataset_version": dataset_version,
            "sample": sample,
            "variants": chosen,
            "judge_endpoint": judge,
            "judge_model": judge_model,
            "seed": seed,
            "prompt_sha256": template.sha256,
            "judge_mode": spec.mode,
            "structured_output": structured_output,
        }
        run_id = await run.start(
            "score", params, [template, template.reask("truncated"), template.reask("unparseable")]
        )
        ctx = ScoreContext(
            engine=engine,
            backends=run.registry,
            judge_endpoint=judge,
            judge_model=judge_model,
            version=version,
            sample_seed=seed,
            sample=picked,
            sampling=Sampling(
                temperature=spec.temperature, top_p=spec.top_p, max_tokens=max_tokens, response_format=fmt
            ),
            parse_attempts=cfg.agents.ranker.parse_attempts,
            base_seed=cfg.seed,
            run_id=run_id,
            spec=spec,
        )
        logger.info(
            "score run %s: version %s, %s of %s rows, variants %s, judge %s (%s)",
            run_id,
            dataset_version,
            len(picked),
            len(keys),
            ", ".join(chosen),
            judge,
            judge_model,
        )
        handle = Handle(ctx)
        counts, failures = await gather_items(
            run, "variants", chosen, lambda v: score_variant_task(handle, v)
        )
        summaries = [await asyncio.to_thread(scoring.variant_summary, ctx, v) for v in chosen]
    rows = _summary_rows(summaries)
    with best_effort("dataset quality artifact"):
        await acreate_table_artifact(
            table=rows,
            key=f"dataset-quality-v{dataset_version}",
            description=f"score run {run_id}: judge {judge_model} ({spec.mode} mode), seed {seed}, {len(picked)} sampled rows; "
            "mean overall 1-10 with 95% interval",
        )
    for s in summaries:
        logger.info(
            "v%s %s: mean %.3f over %s rated rows",
            s.version,
            s.variant,
            s.overall.mean or float("nan"),
            s.scored,
        )
    return {
        "run_id": run_id,
        "version": dataset_version,
        "judge_endpoint": judge,
        "judge_model": judge_model,
        "judge_mode": spec.mode,
        "seed": seed,
        "sample": [pid for _, pid in picked],
        "counts": counts,
        "failures": failures,
        "summaries": [s.as_dict() for s in summaries],
        "rows": rows,
    }
