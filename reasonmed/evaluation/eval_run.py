"""One evaluation run without Prefect: what it is asked (``EvalRequest``), the accuracy it measures from
the stored predictions, and what it hands back (``EvalResult``).

``flows/evaluate.py`` runs one task per benchmark in between and publishes the artifacts;
``reasonmed eval`` (``reasonmed.jobs.evaluate``) starts that flow and reads its result back typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from reasonmed.agents.base import Sampling
from reasonmed.config import PipelineConfig
from reasonmed.evaluation import report
from reasonmed.evaluation.benchmarks import Benchmark, parse_benchmarks
from reasonmed.evaluation.endpoints import endpoint_named
from reasonmed.evaluation.report import AccuracyRow
from reasonmed.evaluation.runner import BackendSource, EvalContext, benchmark_accuracy, select_questions
from reasonmed.prompts import PromptTemplate, get_template
from reasonmed.structured_output import ANSWER_SCHEMA, constrained_template, format_for


@dataclass(frozen=True)
class EvalRequest:
    """What one evaluation is asked to do, checked against the pipeline config (``resolve``)."""

    model_endpoint: str
    model: str
    benchmarks: list[Benchmark]
    limit: int | None
    temperature: float
    max_tokens: int
    structured_output: bool
    template: PromptTemplate  # the evaluate prompt, constrained to a schema with structured output
    response_format: dict[str, Any] | None

    @classmethod
    def resolve(
        cls,
        cfg: PipelineConfig,
        *,
        model_endpoint: str,
        benchmarks: Sequence[str] | None,
        limit: int | None,
        temperature: float,
        max_tokens: int,
        structured_output: bool,
    ) -> EvalRequest:
        """The flow's parameters checked (a known endpoint, known benchmarks) and the prompt chosen."""
        endpoint = endpoint_named(cfg, model_endpoint, "--model-endpoint")
        chosen = parse_benchmarks(benchmarks)
        fmt = format_for(structured_output, endpoint.structured_dialect, "answer", ANSWER_SCHEMA)
        template = (
            constrained_template(get_template("evaluate"), ANSWER_SCHEMA) if fmt else get_template("evaluate")
        )
        return cls(
            model_endpoint=model_endpoint,
            model=endpoint.model,
            benchmarks=chosen,
            limit=limit,
            temperature=temperature,
            max_tokens=max_tokens,
            structured_output=structured_output,
            template=template,
            response_format=fmt,
        )

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.benchmarks]

    def parameters(self) -> dict[str, Any]:
        """What the run's row records as its parameters."""
        return {
            "model_endpoint": self.model_endpoint,
            "model": self.model,
            "benchmarks": self.names,
            "limit": self.limit,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "prompt_sha256": self.template.sha256,
            "structured_output": self.structured_output,
        }

    def templates(self) -> list[PromptTemplate]:
        """The prompts the run may send: recorded with the run, so every stored prediction names its text."""
        t = self.template
        return [t, t.reask("truncated"), t.reask("unparseable")]

    def context(self, engine: Engine, backends: BackendSource, *, base_seed: int, run_id: int) -> EvalContext:
        return EvalContext(
            engine=engine,
            backends=backends,
            endpoint=self.model_endpoint,
            model=self.model,
            sampling=Sampling(
                temperature=self.temperature,
                top_p=1.0,
                max_tokens=self.max_tokens,
                response_format=self.response_format,
            ),
            base_seed=base_seed,
            limit=self.limit,
            run_id=run_id,
            template=self.template,
        )

    def describe(self, run_id: int) -> str:
        return (
            f"eval run {run_id}: {self.model_endpoint} ({self.model}) on {', '.join(self.names)}, "
            f"prompt {self.template.version}"
        )

    def finish(
        self,
        run_id: int,
        rows: list[AccuracyRow],
        *,
        counts: dict[str, Any],
        failures: dict[str, str],
        out: str | None,
    ) -> EvalResult:
        """The run's result; with ``out``, the accuracy CSV and the paper-vs-model table are written there."""
        reference = report.reference_markdown(rows, self.model)
        csv_path = str(report.write_csv(out, rows)) if out else None
        if out:
            report.reference_path(out).write_text(reference, encoding="utf-8")
        return EvalResult(
            run_id=run_id,
            model=self.model,
            endpoint=self.model_endpoint,
            prompt_sha256=self.template.sha256,
            rows=rows,
            counts=counts,
            failures=failures,
            csv=csv_path,
            reference=reference,
        )


def measure_accuracy(ctx: EvalContext, benchmarks: Sequence[str]) -> list[AccuracyRow]:
    """Accuracy per benchmark (overall, then subsets) of the stored predictions for its selected items:
    computed from the database, so a run that asked nothing reports the same figures."""
    rows: list[AccuracyRow] = []
    for name in benchmarks:
        rows.extend(benchmark_accuracy(ctx, name, select_questions(ctx, name)))
    return rows


@dataclass(frozen=True)
class EvalResult:
    """What ``evaluate_model`` returns, typed (``as_dict`` is the flow's result, ``from_dict`` reads it back)."""

    run_id: int
    model: str
    endpoint: str
    prompt_sha256: str
    rows: list[AccuracyRow]
    counts: dict[str, Any]  # benchmark -> what its task did (selected, already stored, asked...)
    failures: dict[str, str]  # benchmark -> why it did not finish
    csv: str | None
    reference: str  # docs/evaluation.md's reference table, filled for this model (markdown)

    def lines(self) -> list[str]:
        """One line per benchmark: its overall accuracy."""
        lines = []
        for r in self.rows:
            if r.subset == report.ALL:
                acc = "n/a" if r.accuracy is None else f"{100 * r.accuracy:.2f}%"
                lines.append(f"{r.benchmark}: {acc} ({r.correct}/{r.n}, {r.selected} selected)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "endpoint": self.endpoint,
            "prompt_sha256": self.prompt_sha256,
            "rows": [r.as_dict() for r in self.rows],
            "counts": self.counts,
            "failures": self.failures,
            "csv": self.csv,
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        return cls(**{**d, "rows": [AccuracyRow(**r) for r in d["rows"]]})
