"""Benchmark evaluation: ask a served model every selected test item once, store every prediction.

A benchmark's questions all go out at once (``asyncio.gather``); the endpoint's client holds the
per-endpoint cap, so concurrency is limited in one place. Predictions are written in batches as
they arrive, keyed by (model, prompt version, question): an interrupted or repeated run asks only
for what is missing, and the accuracy is always computed from the stored rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine

from reasonmed.agents.base import QuestionView, Sampling, derive_seed
from reasonmed.agents.evaluator import answer_question
from reasonmed.db import eval_repo
from reasonmed.db.eval_repo import EvalQuestion
from reasonmed.evaluation.benchmarks import BENCHMARKS, Benchmark
from reasonmed.evaluation.report import AccuracyRow, accuracy_rows
from reasonmed.incomplete import Incomplete
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import clean_reasoning, extract_answer
from reasonmed.prompts import PromptTemplate, get_template
from reasonmed.provenance import Provenance

SAVE_BATCH = 200


class EvalIncomplete(Incomplete):
    """Some predictions failed after every retry; the rest are stored. Run again to fill the gaps."""


class BackendSource(Protocol):
    """Anything that hands out a backend per endpoint name (the LLM registry)."""

    def get(self, name: str) -> ChatBackend: ...


@dataclass
class EvalContext:
    engine: Engine
    backends: BackendSource
    endpoint: str
    model: str
    sampling: Sampling
    base_seed: int = 0
    limit: int | None = None
    run_id: int | None = None
    template: PromptTemplate = field(default_factory=lambda: get_template("evaluate"))


@dataclass
class BenchmarkRun:
    """What one benchmark's evaluation did; ``selected`` maps question id -> subset."""

    benchmark: str
    selected: dict[int, str | None] = field(default_factory=dict)
    already_stored: int = 0
    asked: int = 0
    saved: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "selected": len(self.selected),
            "already_stored": self.already_stored,
            "asked": self.asked,
            "saved": self.saved,
            "failed": self.failed,
        }


def eval_seed(base_seed: int, content_hash: str) -> int:
    """The seed sent for a question: stable across runs and databases (it hangs on the content hash)."""
    return derive_seed(base_seed, "eval", content_hash)


def question_view(q: EvalQuestion) -> QuestionView:
    return QuestionView(
        id=q.id,
        content_hash=q.content_hash,
        source=q.source,
        question=q.question,
        context=q.context,
        options=dict(q.options),
        answer=q.answer,
    )


def prediction_row(
    ctx: EvalContext,
    benchmark: str,
    q: EvalQuestion,
    *,
    text: str,
    finish_reason: str | None,
    request_id: str | None,
    seed: int,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
    attempts: int,
    prompt_sha256: str,
    provenance: Provenance,
) -> dict[str, Any]:
    extracted = extract_answer(clean_reasoning(text), dict(q.options))  # exactly as the pipeline reads a path
    return {
        "run_id": ctx.run_id,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "benchmark": benchmark,
        "subset": q.subset,
        "question_id": q.id,
        "prompt_sha256": prompt_sha256,
        "temperature": ctx.sampling.temperature,
        "top_p": ctx.sampling.top_p,
        "max_tokens": ctx.sampling.max_tokens,
        "seed": seed,
        "raw_output": text,
        "extracted_answer": extracted,
        "gold_answer": q.answer,
        "correct": extracted is not None and extracted == q.answer,
        "finish_reason": finish_reason,
        "request_id": request_id,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": latency_ms,
        "attempts": attempts,
        "prefect_flow_run_id": provenance.prefect_flow_run_id,
        "created_at": eval_repo.now(),
    }


class BatchWriter:
    """Collects rows and saves them ``every`` at a time in a worker thread, one save at a time."""

    def __init__(self, save: Callable[[list[dict[str, Any]]], int], every: int = SAVE_BATCH) -> None:
        self._save, self._every = save, every
        self._rows: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self.saved = 0

    async def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._every:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            rows, self._rows = self._rows, []
            if rows:
                self.saved += await asyncio.to_thread(self._save, rows)


async def _predict(
    ctx: EvalContext,
    backend: ChatBackend,
    benchmark: str,
    q: EvalQuestion,
    writer: BatchWriter,
    run: BenchmarkRun,
    provenance: Provenance,
) -> None:
    seed = eval_seed(ctx.base_seed, q.content_hash)
    call = await answer_question(
        backend, question_view(q), sampling=ctx.sampling, seed=seed, template=ctx.template
    )
    if call.error is not None or not call.completions:
        run.failed += 1
        if len(run.errors) < 5:
            run.errors.append(f"q{q.id}: {call.error}")
        return
    c = call.completions[0]
    await writer.add(
        prediction_row(
            ctx,
            benchmark,
            q,
            text=c.text,
            finish_reason=c.finish_reason,
            request_id=c.request_id,
            seed=seed,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            latency_ms=call.latency_ms,
            attempts=call.attempts,
            prompt_sha256=call.template_sha256,
            provenance=provenance,
        )
    )


async def evaluate_benchmark(
    ctx: EvalContext, benchmark: str, provenance: Provenance | None = None
) -> BenchmarkRun:
    """Predict every selected test item of ``benchmark`` that has no stored prediction yet.

    Raises ``EvalIncomplete`` (after saving every success) when some requests failed for good, so the
    scheduler can retry just those.
    """
    bench: Benchmark = BENCHMARKS[benchmark]
    prov = provenance or Provenance()
    questions = await asyncio.to_thread(
        eval_repo.load_eval_questions,
        ctx.engine,
        source=bench.source,
        subsets=bench.subsets,
        limit=ctx.limit,
    )
    run = BenchmarkRun(benchmark, selected={q.id: q.subset for q in questions})
    stored = await asyncio.to_thread(
        eval_repo.stored_prediction_ids,
        ctx.engine,
        model=ctx.model,
        prompt_sha256=ctx.template.sha256,
        question_ids=[q.id for q in questions],
    )
    todo = [q for q in questions if q.id not in stored]
    run.already_stored, run.asked = len(questions) - len(todo), len(todo)
    if todo:
        backend = ctx.backends.get(ctx.endpoint)
        writer = BatchWriter(lambda rows: eval_repo.save_predictions(ctx.engine, rows))
        try:
            await asyncio.gather(*(_predict(ctx, backend, benchmark, q, writer, run, prov) for q in todo))
        finally:
            await writer.flush()
        run.saved = writer.saved
    if run.failed:
        raise EvalIncomplete(
            f"{benchmark}: {run.failed} of {len(todo)} prediction(s) failed after retries "
            f"(the rest are stored; run again to fill the gaps): {'; '.join(run.errors)}"
        )
    return run


def benchmark_accuracy(
    ctx: EvalContext, benchmark: str, selected: dict[int, str | None]
) -> list[AccuracyRow]:
    """Accuracy of the stored predictions for exactly the selected questions (overall, then subsets)."""
    outcomes = eval_repo.prediction_outcomes(
        ctx.engine,
        model=ctx.model,
        prompt_sha256=ctx.template.sha256,
        question_ids=list(selected),
    )
    return accuracy_rows(
        model=ctx.model,
        endpoint=ctx.endpoint,
        benchmark=BENCHMARKS[benchmark],
        selected=selected,
        outcomes=outcomes,
        prompt_sha256=ctx.template.sha256,
    )


def select_questions(ctx: EvalContext, benchmark: str) -> dict[int, str | None]:
    """The test items an evaluation of ``benchmark`` covers (id order, first ``limit``) -> subset."""
    bench = BENCHMARKS[benchmark]
    return {
        q.id: q.subset
        for q in eval_repo.load_eval_questions(
            ctx.engine, source=bench.source, subsets=bench.subsets, limit=ctx.limit
        )
    }


__all__ = [
    "BatchWriter",
    "BenchmarkRun",
    "EvalContext",
    "EvalIncomplete",
    "benchmark_accuracy",
    "eval_seed",
    "evaluate_benchmark",
    "prediction_row",
    "question_view",
    "select_questions",
]
