"""One scoring run without Prefect: what it is asked (``ScoreRequest``: the version, its seeded sample,
the judge and its prompt) and what it hands back (``ScoreResult``), and two results compared.

``flows/score.py`` runs one task per variant in between and publishes the table artifact;
``reasonmed score`` (``reasonmed.jobs.score``) starts that flow per version and reads its results back typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine

from reasonmed.agents.base import Sampling
from reasonmed.config import ConfigError, PipelineConfig
from reasonmed.db import eval_repo
from reasonmed.db.eval_repo import VersionRef
from reasonmed.evaluation import scoring
from reasonmed.evaluation.endpoints import endpoint_named
from reasonmed.evaluation.judge_modes import JudgeSpec, judge_spec
from reasonmed.evaluation.scoring import BackendSource, ScoreContext, Variant, VariantSummary
from reasonmed.prompts import PromptTemplate
from reasonmed.structured_output import JUDGE_SCHEMA, constrained_template, format_for


class UnknownDatasetVersion(LookupError):
    pass


def find_version(engine: Engine, version: int) -> VersionRef:
    """The exported dataset version numbered ``version``, or ``UnknownDatasetVersion`` saying where they come from."""
    found = eval_repo.find_dataset_version(engine, version)
    if found is None:
        raise UnknownDatasetVersion(
            f"dataset version {version} does not exist (table dataset_versions; `reasonmed export` writes one)"
        )
    return found


@dataclass(frozen=True)
class ScoreRequest:
    """What one scoring run is asked to do, checked and its sample drawn (``resolve``)."""

    dataset_version: int
    version: VersionRef
    sample_size: int  # rows asked for per variant
    population: int  # rows the version holds
    picked: list[tuple[int, int]]  # the sampled (dataset_sample id, path id), in rank order
    variants: list[Variant]
    seed: int
    judge_endpoint: str
    judge_model: str
    spec: JudgeSpec  # the judge mode's prompt (constrained to a schema with structured output) and sampling
    max_tokens: int
    structured_output: bool
    response_format: dict[str, Any] | None

    @classmethod
    def resolve(
        cls,
        engine: Engine,
        cfg: PipelineConfig,
        *,
        dataset_version: int,
        sample: int,
        variants: Sequence[str] | None,
        judge_endpoint: str | None,
        seed: int,
        max_tokens: int,
        judge_mode: str,
        structured_output: bool,
    ) -> ScoreRequest:
        """The flow's parameters checked (a known judge endpoint and version, a schema only for the rubric)
        and the version's seeded sample drawn. Reads the database: run it in a thread."""
        judge = judge_endpoint or cfg.agents.verifier.endpoint
        endpoint = endpoint_named(cfg, judge, "--judge-endpoint")
        chosen = scoring.parse_variants(variants)
        version = find_version(engine, dataset_version)
        keys = eval_repo.dataset_sample_keys(engine, version.id)
        picked = scoring.select_sample(keys, sample, seed) if keys else []
        spec = judge_spec(judge_mode)
        fmt = None
        if structured_output:
            if spec.mode != "rubric":
                raise ConfigError(
                    "--structured-output holds the rubric judge's ratings to a schema; "
                    "the paper judge mode gives one free-form score"
                )
            fmt = format_for(True, endpoint.structured_dialect, "ratings", JUDGE_SCHEMA)
            spec = replace(spec, template=constrained_template(spec.template, JUDGE_SCHEMA))
        return cls(
            dataset_version=dataset_version,
            version=version,
            sample_size=sample,
            population=len(keys),
            picked=picked,
            variants=chosen,
            seed=seed,
            judge_endpoint=judge,
            judge_model=endpoint.model,
            spec=spec,
            max_tokens=max_tokens,
            structured_output=structured_output,
            response_format=fmt,
        )

    def parameters(self) -> dict[str, Any]:
        """What the run's row records as its parameters."""
        return {
            "dataset_version": self.dataset_version,
            "sample": self.sample_size,
            "variants": self.variants,
            "judge_endpoint": self.judge_endpoint,
            "judge_model": self.judge_model,
            "seed": self.seed,
            "prompt_sha256": self.spec.template.sha256,
            "judge_mode": self.spec.mode,
            "structured_output": self.structured_output,
        }

    def templates(self) -> list[PromptTemplate]:
        """The prompts the run may send: recorded with the run, so every stored rating names its text."""
        t = self.spec.template
        return [t, t.reask("truncated"), t.reask("unparseable")]

    def context(
        self, engine: Engine, backends: BackendSource, cfg: PipelineConfig, run_id: int
    ) -> ScoreContext:
        spec = self.spec
        return ScoreContext(
            engine=engine,
            backends=backends,
            judge_endpoint=self.judge_endpoint,
            judge_model=self.judge_model,
            version=self.version,
            sample_seed=self.seed,
            sample=self.picked,
            sampling=Sampling(
                temperature=spec.temperature,
                top_p=spec.top_p,
                max_tokens=self.max_tokens,
                response_format=self.response_format,
            ),
            parse_attempts=cfg.agents.ranker.parse_attempts,
            base_seed=cfg.seed,
            run_id=run_id,
            spec=spec,
        )

    def describe(self, run_id: int) -> str:
        return (
            f"score run {run_id}: version {self.dataset_version}, {len(self.picked)} of {self.population} "
            f"rows, variants {', '.join(self.variants)}, judge {self.judge_endpoint} ({self.judge_model})"
        )

    def result(
        self,
        run_id: int,
        *,
        counts: dict[str, Any],
        failures: dict[str, str],
        summaries: list[VariantSummary],
    ) -> ScoreResult:
        return ScoreResult(
            run_id=run_id,
            version=self.dataset_version,
            judge_endpoint=self.judge_endpoint,
            judge_model=self.judge_model,
            judge_mode=self.spec.mode,
            seed=self.seed,
            sample=[pid for _, pid in self.picked],
            counts=counts,
            failures=failures,
            summaries=summaries,
        )


@dataclass(frozen=True)
class ScoreResult:
    """What ``score_dataset`` returns, typed (``as_dict`` is the flow's result, ``from_dict`` reads it back)."""

    run_id: int
    version: int
    judge_endpoint: str
    judge_model: str
    judge_mode: str
    seed: int
    sample: list[int]  # the sampled path ids, in rank order
    counts: dict[str, Any]  # variant -> what its task did (sampled, already stored, asked...)
    failures: dict[str, str]  # variant -> why it did not finish
    summaries: list[VariantSummary]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per variant, rounded for reading: the artifact's and the CLI's table."""
        return summary_rows(self.summaries)

    def lines(self) -> list[str]:
        """One line per variant: its mean overall score."""
        return [
            f"v{s.version} {s.variant}: mean {s.overall.mean or float('nan'):.3f} over {s.scored} rated rows"
            for s in self.summaries
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "version": self.version,
            "judge_endpoint": self.judge_endpoint,
            "judge_model": self.judge_model,
            "judge_mode": self.judge_mode,
            "seed": self.seed,
            "sample": self.sample,
            "counts": self.counts,
            "failures": self.failures,
            "summaries": [s.as_dict() for s in self.summaries],
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreResult:
        fields = {k: v for k, v in d.items() if k != "rows"}  # rows are read off the summaries
        return cls(**{**fields, "summaries": [VariantSummary.from_dict(s) for s in d["summaries"]]})


def summary_rows(summaries: Sequence[VariantSummary]) -> list[dict[str, Any]]:
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


def compare_results(a: ScoreResult, b: ScoreResult) -> list[dict[str, Any]]:
    """Version b minus version a for every variant both rated (``scoring.compare``), in b's order."""
    by_variant = {s.variant: s for s in a.summaries}
    return [scoring.compare(by_variant[s.variant], s) for s in b.summaries if s.variant in by_variant]
