"""``reasonmed score``: the checks made before the scoring flow starts, one flow run per dataset version,
and their typed results (``score_run.compare_results`` compares two).

The flow checks the judge endpoint and the version again on the worker (``ScoreRequest.resolve``): a
deployment run has no command in front of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from reasonmed.config import get_settings, load_pipeline_config
from reasonmed.evaluation.judge_modes import JudgeMode
from reasonmed.evaluation.score_run import ScoreResult, UnknownDatasetVersion, find_version
from reasonmed.evaluation.scoring import Variant
from reasonmed.jobs import startup
from reasonmed.mistake import Mistake


@dataclass(frozen=True)
class ScoreJob:
    versions: list[int]  # one dataset version, or two to compare
    sample: int = 3000
    variants: list[Variant] = field(default_factory=lambda: ["reasonmed"])
    judge_endpoint: str | None = None  # None: the verifier's endpoint
    seed: int = 0
    config: Path | None = None  # pipeline YAML; None: REASONMED_PIPELINE_CONFIG, else the simulator default
    structured_output: bool = False
    judge_mode: JudgeMode = "rubric"


def run_scores(job: ScoreJob, database_url: str | None = None) -> list[ScoreResult]:
    """Check the judge endpoint (named in the config, reachable), the database and every version, then
    score the versions one after the other; a variant that did not finish is in its result's ``failures``."""
    cfg = load_pipeline_config(job.config or get_settings().pipeline_config)
    if job.judge_endpoint is not None:
        startup.known_endpoint(cfg, job.judge_endpoint, "--judge-endpoint")
    engine = startup.migrated_engine(database_url)
    for v in job.versions:
        try:
            find_version(engine, v)
        except UnknownDatasetVersion as exc:
            raise Mistake(str(exc)) from None
    startup.require_reachable(cfg, job.judge_endpoint or cfg.agents.verifier.endpoint, job.config)
    return [_score(job, v) for v in job.versions]


def _score(job: ScoreJob, version: int) -> ScoreResult:
    from reasonmed.flows.score import score_dataset

    try:
        result = asyncio.run(
            score_dataset(
                dataset_version=version,
                sample=job.sample,
                variants=job.variants,
                judge_endpoint=job.judge_endpoint,
                seed=job.seed,
                config=str(job.config) if job.config else None,
                structured_output=job.structured_output,
                judge_mode=job.judge_mode,
            )
        )
    except UnknownDatasetVersion as exc:  # gone since it was checked
        raise Mistake(str(exc)) from None
    return ScoreResult.from_dict(result)
