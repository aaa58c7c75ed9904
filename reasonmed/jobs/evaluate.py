"""``reasonmed eval``: the checks made before the evaluation flow starts, the flow, and its typed result.

The flow checks the endpoint and the benchmarks again on the worker (``EvalRequest.resolve``): a deployment
run has no command in front of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from reasonmed.config import get_settings, load_pipeline_config
from reasonmed.evaluation.benchmarks import BenchmarkName
from reasonmed.evaluation.eval_run import EvalResult
from reasonmed.jobs import startup


@dataclass(frozen=True)
class EvalJob:
    model_endpoint: str
    benchmarks: list[BenchmarkName]
    limit: int | None = None
    config: Path | None = None  # pipeline YAML; None: REASONMED_PIPELINE_CONFIG, else the simulator default
    out: Path | None = None  # also write the accuracy CSV here, and the reference table beside it
    temperature: float = 0.0
    max_tokens: int = 4096
    structured_output: bool = False


def run_eval(job: EvalJob, database_url: str | None = None) -> EvalResult:
    """Check the endpoint (named in the config, reachable) and the database, then run the evaluation flow
    and return its result; a benchmark that did not finish is in ``result.failures``."""
    cfg = load_pipeline_config(job.config or get_settings().pipeline_config)
    startup.known_endpoint(cfg, job.model_endpoint, "--model-endpoint")
    startup.migrated_engine(database_url)
    startup.require_reachable(cfg, job.model_endpoint, job.config)
    from reasonmed.flows.evaluate import evaluate_model

    result = asyncio.run(
        evaluate_model(
            model_endpoint=job.model_endpoint,
            benchmarks=job.benchmarks,
            limit=job.limit,
            config=str(job.config) if job.config else None,
            out=str(job.out) if job.out else None,
            temperature=job.temperature,
            max_tokens=job.max_tokens,
            structured_output=job.structured_output,
        )
    )
    return EvalResult.from_dict(result)
