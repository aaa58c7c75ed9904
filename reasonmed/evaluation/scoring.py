"""Dataset quality score (paper, Stage 5): a judge model rates a seeded random sample of an exported
dataset version 1-10 on clinical accuracy, logical reasoning, factual correctness and completeness.

The sample is a pure function of (seed, the version's rows): rows are ranked by a hash of the seed
and their path id and the first ``n`` taken, so the same seed always picks the same rows, and a
larger sample with the same seed contains the smaller one. The judge sees exactly the text the
export wrote for the variant (``reasonmed.export.assemble.dataset_output``). Every rating is stored
with its justification and raw output; a rerun of the same scoring asks only for missing rows.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, get_args

from sqlalchemy import Engine

from reasonmed.agents.base import QuestionView, Sampling, derive_seed
from reasonmed.agents.judge import judge_response
from reasonmed.db import eval_repo
from reasonmed.db.eval_repo import SampleRow, VersionRef
from reasonmed.evaluation.judge_modes import JudgeSpec, judge_spec
from reasonmed.evaluation.judge_output import CRITERIA
from reasonmed.evaluation.runner import BatchWriter
from reasonmed.evaluation.stats import MeanCI, difference_interval, mean_interval
from reasonmed.export.assemble import dataset_output
from reasonmed.incomplete import Incomplete
from reasonmed.llm.types import ChatBackend
from reasonmed.prompts import PromptTemplate
from reasonmed.provenance import Provenance

Variant = Literal["reasonmed", "cotmed", "responsemed"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
_DATASET_NAME = {"reasonmed": "ReasonMed", "cotmed": "CoTMed", "responsemed": "ResponseMed"}


class ScoreIncomplete(Incomplete):
    """Some judge calls failed after every retry; the rest are stored. Run again to fill the gaps."""


class BackendSource(Protocol):
    def get(self, name: str) -> ChatBackend: ...


def parse_variants(spec: str | Sequence[str] | None) -> list[Variant]:
    """``"reasonmed,cotmed"``, a list, or ``"all"`` -> variants in canonical order."""
    if spec is None:
        return ["reasonmed"]
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["all"]:
        return list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(
            f"unknown variant(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(VARIANTS)} or all)"
        )
    return [v for v in VARIANTS if v in names]


def sample_rank(seed: int, path_id: int) -> bytes:
    return hashlib.sha256(f"reasonmed-score|{seed}|{path_id}".encode()).digest()


def select_sample(keys: Sequence[tuple[int, int]], n: int, seed: int) -> list[tuple[int, int]]:
    """The first ``n`` of the (dataset_sample id, path id) pairs ranked by a hash of (seed, path id)."""
    if n < 1:
        raise ValueError(f"sample size must be >= 1 (got {n})")
    return sorted(keys, key=lambda k: sample_rank(seed, k[1]))[:n]


def render_variant(row: SampleRow, variant: str) -> str | None:
    """The row's ``output`` as exported for ``variant``; None when the variant has no text for it."""
    text = dataset_output(_DATASET_NAME[variant], row.cot or "", row.summary or "")
    return text or None


def judge_seed(base_seed: int, variant: str, path_id: int) -> int:
    return derive_seed(base_seed, "judge", variant, path_id)


def sample_view(row: SampleRow) -> QuestionView:
    return QuestionView(
        id=row.question_id,
        content_hash="",
        source="",
        question=row.question,
        context=row.context,
        options=dict(row.options),
        answer=row.answer,
    )


@dataclass
class ScoreContext:
    engine: Engine
    backends: BackendSource
    judge_endpoint: str
    judge_model: str
    version: VersionRef
    sample_seed: int
    sample: list[tuple[int, int]]  # chosen (dataset_sample id, path id), in rank order
    sampling: Sampling
    parse_attempts: int = 2
    base_seed: int = 0
    run_id: int | None = None
    spec: JudgeSpec = field(default_factory=lambda: judge_spec("rubric"))

    @property
    def template(self) -> PromptTemplate:
        return self.spec.template

    def key(self, variant: str) -> dict[str, Any]:
        return {
            "dataset_version_id": self.version.id,
            "variant": variant,
            "sample_seed": self.sample_seed,
            "judge_model": self.judge_model,
            "prompt_sha256": self.template.sha256,
        }


async def _judge_row(
    ctx: ScoreContext,
    backend: ChatBackend,
    variant: str,
    row: SampleRow,
    text: str,
    writer: BatchWriter,
    failures: list[str],
) -> None:
    seed = judge_seed(ctx.base_seed, variant, row.path_id)
    call, scores = await judge_response(
        backend,
        sample_view(row),
        text,
        sampling=ctx.sampling,
        seed=seed,
        attempts=ctx.parse_attempts,
        template=ctx.spec.template,
        parse=ctx.spec.parse,
    )
    if call.error is not None or not call.completions:
        failures.append(f"path {row.path_id}: {call.error}")
        return
    ratings = scores.as_row() if scores else {c: None for c in (*CRITERIA, "overall", "justification")}
    await writer.add(
        {
            **ctx.key(variant),
            "run_id": ctx.run_id,
            "dataset_version": ctx.version.version,
            "dataset_sample_id": row.dataset_sample_id,
            "question_id": row.question_id,
            "path_id": row.path_id,
            "judge_endpoint": ctx.judge_endpoint,
            "judge_mode": ctx.spec.mode,
            **ratings,
            "raw_output": call.completions[0].text,
            "status": "ok" if scores else "unparseable",
            "seed": seed,
            "prompt_tokens": call.prompt_tokens,
            "completion_tokens": call.completion_tokens,
            "latency_ms": call.latency_ms,
            "created_at": eval_repo.now(),
        }
    )


async def score_variant(
    ctx: ScoreContext, variant: str, provenance: Provenance | None = None
) -> dict[str, int]:
    """Rate every sampled row of ``variant`` not rated yet by this judge and prompt version."""
    stored = await asyncio.to_thread(eval_repo.stored_score_paths, ctx.engine, **ctx.key(variant))
    todo = [sid for sid, pid in ctx.sample if pid not in stored]
    rows = await asyncio.to_thread(eval_repo.load_sample_rows, ctx.engine, todo) if todo else []
    texts = [(r, render_variant(r, variant)) for r in rows]
    failures: list[str] = []
    writer = BatchWriter(lambda batch: eval_repo.save_scores(ctx.engine, batch))
    asked = [(r, t) for r, t in texts if t is not None]
    if asked:
        backend = ctx.backends.get(ctx.judge_endpoint)
        try:
            await asyncio.gather(
                *(_judge_row(ctx, backend, variant, r, t, writer, failures) for r, t in asked)
            )
        finally:
            await writer.flush()
    if failures:
        raise ScoreIncomplete(
            f"{variant}: {len(failures)} judge call(s) failed after retries: {'; '.join(failures[:5])}"
        )
    return {
        "sampled": len(ctx.sample),
        "already_stored": len(ctx.sample) - len(todo),
        "asked": len(asked),
        "no_text": len(texts) - len(asked),
        "saved": writer.saved,
    }


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class VariantSummary:
    version: int
    variant: str
    sample_seed: int
    judge_model: str
    prompt_sha256: str
    sampled: int
    scored: int
    unparseable: int
    overall: MeanCI
    criteria: dict[str, float | None]
    judge_mode: str = "rubric"  # rubric | paper (evaluation/judge_modes.py)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VariantSummary:
        o = d["overall"]
        return cls(**{**d, "overall": MeanCI(o["n"], o["mean"], o["sd"], o["ci95_low"], o["ci95_high"])})

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overall"] = {
            "n": self.overall.n,
            "mean": self.overall.mean,
            "sd": self.overall.sd,
            "ci95_low": self.overall.low,
            "ci95_high": self.overall.high,
        }
        return d


def summarise(
    rows: Sequence[Mapping[str, Any]],
    *,
    version: int,
    variant: str,
    sample_seed: int,
    judge_model: str,
    prompt_sha256: str,
    sampled: int,
    judge_mode: str = "rubric",
) -> VariantSummary:
    ok = [r for r in rows if r["status"] == "ok" and r["overall"] is not None]
    # The paper's mode rates no criteria: their means stay None.
    criteria = {c: mean_interval([float(r[c]) for r in ok if r[c] is not None]).mean for c in CRITERIA}
    return VariantSummary(
        version=version,
        variant=variant,
        sample_seed=sample_seed,
        judge_model=judge_model,
        prompt_sha256=prompt_sha256,
        sampled=sampled,
        scored=len(ok),
        judge_mode=judge_mode,
        unparseable=len(rows) - len(ok),
        overall=mean_interval([float(r["overall"]) for r in ok]),
        criteria=criteria,
    )


def variant_summary(ctx: ScoreContext, variant: str) -> VariantSummary:
    rows = eval_repo.load_scores(ctx.engine, **ctx.key(variant), path_ids=[p for _, p in ctx.sample])
    return summarise(
        rows,
        version=ctx.version.version,
        variant=variant,
        sample_seed=ctx.sample_seed,
        judge_model=ctx.judge_model,
        prompt_sha256=ctx.template.sha256,
        sampled=len(ctx.sample),
        judge_mode=ctx.spec.mode,
    )


def compare(a: VariantSummary, b: VariantSummary) -> dict[str, Any]:
    """Version b minus version a, with a 95% interval of the difference of mean overall scores."""
    diff = difference_interval(a.overall, b.overall)
    return {
        "variant": a.variant,
        "version_a": a.version,
        "version_b": b.version,
        "mean_a": a.overall.mean,
        "mean_b": b.overall.mean,
        "n_a": a.overall.n,
        "n_b": b.overall.n,
        "difference": diff[0] if diff else None,
        "ci95_low": diff[1] if diff else None,
        "ci95_high": diff[2] if diff else None,
        "significant": bool(diff and (diff[1] > 0 or diff[2] < 0)),
    }


__all__ = [
    "VARIANTS",
    "ScoreContext",
    "ScoreIncomplete",
    "VariantSummary",
    "compare",
    "judge_seed",
    "parse_variants",
    "render_variant",
    "sample_view",
    "score_variant",
    "select_sample",
    "summarise",
    "variant_summary",
]
