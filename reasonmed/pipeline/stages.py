"""The four per-question stages. Each reads what the database already holds for the question and does
only what is missing, then writes its results in one transaction; so a stage that is retried, or a run
that is killed and started again, recomputes nothing that finished and writes no second copy.
Resolution has LLM waits between its steps (scores, then rewrites, then their verdicts, then the
outcome), so it commits once per step rather than holding a transaction open across model calls; each
step's write is itself one transaction keyed by unique constraints, and the outcome row, written last,
is what marks the question resolved.

An endpoint failure that outlives the HTTP layer's retries is recorded as a failed call, the stage's
successful results are still saved, and ``StageIncomplete`` is raised with the failed requests' error
kinds, which ``pipeline/failures.py`` turns into the question's outcome. Content that stays unusable for
one path is decided for that path (its verdict is ``unparseable``, its score is empty, an accepted path
whose summary stays unusable is dropped with its reason) so it never holds the question back.

Verdicts, scores and summaries are asked for in one shape (``pipeline/judging.py``); the stage context and
the state carried between stages are in ``pipeline/context.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from reasonmed import tiers as tier_rules
from reasonmed.agents.base import QuestionView, Sampling
from reasonmed.agents.generator import generate_paths
from reasonmed.agents.rewriter import REFINER, REGENERATOR
from reasonmed.db import stage_writes
from reasonmed.pipeline import keys
from reasonmed.pipeline.context import Carried, StageContext
from reasonmed.pipeline.failures import StageIncomplete, raise_if_failed
from reasonmed.pipeline.judging import RANK, SUMMARIZE, VERIFY, ask_judge, judge_missing, summary_record
from reasonmed.pipeline.records import (
    Decision,
    GenerateJob,
    Request,
    WriteJob,
    call_record,
    path_record,
    waiting,
)
from reasonmed.provenance import Provenance
from reasonmed.question_state import (
    AcceptedRef,
    LoadedQuestion,
    OutcomeRow,
    PathRow,
    QuestionState,
)
from reasonmed.roles import Origin, QuestionStatus, Role
from reasonmed.tiers import Tier, assign_tier, guard_mode, passes


def _written_now(ctx: StageContext, paths: Sequence[PathRow], origin: str) -> list[PathRow]:
    """The refined or regenerated paths the configured writer (model and prompt) produced; paths an earlier
    refiner or regenerator wrote stay stored but no longer count."""
    writer = ctx.keys.writes(origin)
    return [
        p
        for p in paths
        if p.origin == origin and p.model == writer.model and p.prompt_sha256 in writer.prompt_shas
    ]


def _write_key(taken: set[str], base: str, ctx: StageContext, origin: str) -> str:
    """The path key the configured writer writes ``base`` under (``keys.writer_path``)."""
    writer = ctx.keys.writes(origin)
    return keys.writer_path(base, taken, writer.model, writer.prompt_shas[0] if writer.prompt_shas else "")


# --------------------------------------------------------------------------- stage 1: generation


def _sample_runs(missing: Sequence[int]) -> list[list[int]]:
    """Contiguous runs of missing samples: each goes out as one n-request (one prefill on vLLM)."""
    runs: list[list[int]] = []
    for s in missing:
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def _generate_jobs(ctx: StageContext, q: QuestionView, st: QuestionState) -> list[GenerateJob]:
    have = {p.path_key for p in st.paths}
    jobs: list[GenerateJob] = []
    order = 0
    for gi, g in enumerate(ctx.cfg.agents.generators):
        backend = ctx.backends.get(g.endpoint)
        template = ctx.cfg.prompt("generate", gi)
        for t in g.temperatures:
            base_seed = keys.generate_seed(ctx.cfg.seed, q.content_hash, g.endpoint, t)
            missing = [
                s for s in range(g.paths_per_temperature) if keys.generated_path(g.endpoint, t, s) not in have
            ]
            for run in _sample_runs(missing):
                request = partial(
                    generate_paths,
                    backend,
                    q,
                    sampling=Sampling(t, g.top_p, g.max_tokens),
                    seed=base_seed + run[0],
                    n=len(run),
                    reasks=ctx.cfg.output_retries,
                    template=template,
                )
                key = keys.generate_call(q.id, g.endpoint, t, run[0], len(run))
                jobs.append(GenerateJob(key, g.endpoint, t, run[0], len(run), order, request))
            order += g.paths_per_temperature
    return jobs


async def generate(
    ctx: StageContext, question_id: int, prov: Provenance, carried: Carried | None = None
) -> int:
    """Write every missing generated path (models x temperatures x samples). Returns paths written."""
    async with ctx.question(question_id, carried) as loaded:
        return await _generate(ctx, loaded, prov)


async def _generate(ctx: StageContext, loaded: LoadedQuestion, origin: Provenance) -> int:
    q, st = loaded.question, loaded.state
    if st.finished:
        return 0
    return await _write_paths(ctx, q, st, origin, _generate_jobs(ctx, q, st))


async def _write_paths(
    ctx: StageContext,
    q: QuestionView,
    st: QuestionState,
    origin: Provenance,
    jobs: Sequence[GenerateJob | WriteJob],
) -> int:
    """Send the jobs' requests together, then store every call and every path they returned in one write;
    a request that failed fails the stage after that write. Returns the paths written."""
    if not jobs:
        return 0
    outcomes = await asyncio.gather(*(j.request() for j in jobs))
    calls, paths = [], []
    for job, out in zip(jobs, outcomes, strict=True):
        if not waiting(out):
            calls.append(call_record(q, job.call_key, out, origin))
        if out.error is None:
            for i in range(min(len(out.completions), job.count)):
                place = job.place(i)
                paths.append(
                    path_record(
                        q,
                        out,
                        i,
                        job.call_key,
                        origin,
                        path_key=place.path_key,
                        kind=place.origin,
                        parent=place.parent,
                        sample_index=place.sample_index,
                        generation_order=place.generation_order,
                    )
                )
    st.add_paths(paths, await ctx.write(q.id, partial(stage_writes.write_paths, calls=calls, paths=paths)))
    raise_if_failed(jobs[0].stage, q, outcomes)
    return len(paths)


# --------------------------------------------------------------------------- stage 2: verification


async def verify(
    ctx: StageContext, question_id: int, prov: Provenance, carried: Carried | None = None
) -> None:
    """Verify every generated path that has no verdict from the configured verifier yet."""
    async with ctx.question(question_id, carried) as loaded:
        q, st = loaded.question, loaded.state
        if not st.finished:
            await judge_missing(ctx, q, st, VERIFY, st.by_origin(Origin.GENERATED), prov)


# --------------------------------------------------------------------------- stage 3: tiered resolution


def _error_reasons(st: QuestionState, paths: Sequence[PathRow]) -> list[str]:
    """The verifier's analyses of the failed attempts, de-duplicated, in generation order.

    Only Error verdicts carry an analysis: an unparseable verdict's reason is a placeholder, not advice.
    """
    seen: dict[str, None] = {}
    for p in paths:
        v = st.verdicts.get(p.id)
        if v is not None and v.outcome == "error" and v.reason:
            seen.setdefault(v.reason.strip(), None)
    return list(seen)


def _passes(st: QuestionState, q: QuestionView, p: PathRow) -> bool:
    """The answer guard: "correct" means judged Correct AND (unless the guard is off) concluding with the
    keyed option, as read under the ``answer_guard`` mode the verdict was judged under (stored on it, so the
    decision and the audit views read the same rule; a changed mode applies to verdicts written after it)."""
    v = st.verdicts.get(p.id)
    return v is not None and passes(
        guard_mode(v.answer_guard), v.outcome, p.extracted_answer, v.verifier_answer, q.answer
    )


def _accepted(st: QuestionState, paths: Sequence[PathRow]) -> list[AcceptedRef]:
    return [AcceptedRef(p.id, st.verdicts[p.id].id) for p in paths]


@dataclass(frozen=True)
class _Routed:
    """A question whose generated paths are all verified, as the tier functions receive it."""

    loaded: LoadedQuestion  # the question and its state, kept current as the tier writes
    generated: list[PathRow]
    correct: list[PathRow]
    errors: list[str]  # the verifier's analyses of the failed attempts
    origin: Provenance

    @property
    def q(self) -> QuestionView:
        return self.loaded.question


def _rewrite(
    ctx: StageContext, q: QuestionView, source: PathRow, errors: list[str], *, refine: bool, seed: int
) -> Request:
    """The request that rewrites ``source`` from the verifier's ``errors``: the refiner's correction
    (medium tier) or the regenerator's new attempt (difficult tier)."""
    agent = ctx.cfg.agents.refiner if refine else ctx.cfg.agents.regenerator
    writer = REFINER if refine else REGENERATOR
    return partial(
        writer,
        ctx.backends.get(agent.endpoint),
        q,
        source.clean_text,
        errors,
        sampling=Sampling(agent.temperature, agent.top_p, agent.max_tokens),
        seed=seed,
        reasks=ctx.cfg.output_retries,
        template=ctx.cfg.prompt(writer.prompt),
    )


def _refine_job(
    ctx: StageContext, q: QuestionView, parent: PathRow, path_key: str, sample: int, errors: list[str]
) -> WriteJob:
    seed = keys.path_seed(ctx.cfg.seed, q.content_hash, "refine", parent.path_key)
    request = _rewrite(ctx, q, parent, errors, refine=True, seed=seed)
    return WriteJob(keys.refine_call(q.id, path_key), Role.REFINER, path_key, parent.id, sample, request)


def _regenerate_job(
    ctx: StageContext, q: QuestionView, attempt: PathRow, path_key: str, index: int, errors: list[str]
) -> WriteJob:
    seed = keys.regenerate_seed(ctx.cfg.seed, q.content_hash, index)
    request = _rewrite(ctx, q, attempt, errors, refine=False, seed=seed)
    return WriteJob(
        keys.regenerate_call(q.id, path_key), Role.REGENERATOR, path_key, attempt.id, index, request
    )


async def _resolve_easy(ctx: StageContext, r: _Routed) -> Decision:
    """Easy: the ranker's best ``keep_top`` Correct paths."""
    st = r.loaded.state
    await judge_missing(ctx, r.q, st, RANK, r.correct, r.origin)
    return Decision(_accepted(st, tier_rules.ranked(r.correct, st.scores, ctx.cfg.tiers.keep_top)))


async def _resolve_medium(ctx: StageContext, r: _Routed) -> Decision:
    """Medium: the refiner improves the ranker's best ``max_paths`` Correct paths with the error reasons;
    each refined path is verified again and replaces its parent only if it passes."""
    st = r.loaded.state
    await judge_missing(ctx, r.q, st, RANK, r.correct, r.origin)
    best = tier_rules.ranked(r.correct, st.scores, ctx.cfg.agents.refiner.max_paths)
    taken = {p.path_key for p in st.paths}
    done = {p.parent_path_id for p in _written_now(ctx, st.paths, Origin.REFINED)}
    jobs = [
        _refine_job(
            ctx, r.q, p, _write_key(taken, keys.refined_path(p.path_key), ctx, Origin.REFINED), i, r.errors
        )
        for i, p in enumerate(best)
        if p.id not in done
    ]
    await _write_paths(ctx, r.q, st, r.origin, jobs)
    st = await ctx.fresh(r.loaded)
    refined = {
        p.parent_path_id: p
        for p in _written_now(ctx, st.by_origin(Origin.REFINED), Origin.REFINED)
        if p.parent_path_id is not None
    }
    await judge_missing(ctx, r.q, st, VERIFY, list(refined.values()), r.origin)
    st = await ctx.fresh(r.loaded)
    kept = tier_rules.medium_keep(best, refined, lambda p: _passes(st, r.q, p), ctx.cfg.tiers.keep_top)
    return Decision(_accepted(st, kept))


async def _resolve_difficult(ctx: StageContext, r: _Routed) -> Decision:
    """Difficult: the refiner, then a stronger reasoning model (spec, stage 3). Both start from the question's
    lone Correct path, else its best failed attempt (``tier_rules.difficult_source``), with every error reason.
    They are independent, so they run at once; every new path is verified again."""
    st = r.loaded.state
    base = tier_rules.difficult_source(r.generated, lambda p: _passes(st, r.q, p))
    taken = {p.path_key for p in st.paths}
    jobs = []
    if base.id not in {p.parent_path_id for p in _written_now(ctx, st.paths, Origin.REFINED)}:
        ref_key = _write_key(taken, keys.refined_path(base.path_key), ctx, Origin.REFINED)
        jobs.append(_refine_job(ctx, r.q, base, ref_key, 0, r.errors))
    regen_now = {p.sample_index for p in _written_now(ctx, st.paths, Origin.REGENERATED)}
    jobs += [
        _regenerate_job(
            ctx, r.q, base, _write_key(taken, keys.regenerated_path(i), ctx, Origin.REGENERATED), i, r.errors
        )
        for i in range(ctx.cfg.agents.regenerator.paths)
        if i not in regen_now
    ]
    await _write_paths(ctx, r.q, st, r.origin, jobs)
    st = await ctx.fresh(r.loaded)
    refined = [
        p
        for p in _written_now(ctx, st.by_origin(Origin.REFINED), Origin.REFINED)
        if p.parent_path_id == base.id
    ]
    regen = _written_now(ctx, st.by_origin(Origin.REGENERATED), Origin.REGENERATED)
    await judge_missing(ctx, r.q, st, VERIFY, [*refined, *regen], r.origin)
    st = await ctx.fresh(r.loaded)
    kept = tier_rules.difficult_keep(
        refined, base, regen, lambda p: _passes(st, r.q, p), ctx.cfg.tiers.keep_top
    )
    return Decision(_accepted(st, kept), None if kept else tier_rules.difficult_rejection(len(regen)))


_BY_TIER = {Tier.EASY: _resolve_easy, Tier.MEDIUM: _resolve_medium, Tier.DIFFICULT: _resolve_difficult}


async def resolve(
    ctx: StageContext, question_id: int, prov: Provenance, carried: Carried | None = None
) -> str:
    """Route the question by tier and decide its accepted paths (or reject it, with the reason).

    A question still ``resolved`` (not yet summarised, or reopened because a stage's model or prompt
    changed) is decided again: every step is keyed, so only what the new keys lack is asked for, and an
    unchanged decision is written back unchanged.
    """
    async with ctx.question(question_id, carried) as loaded:
        return await _resolve(ctx, loaded, prov)


async def _resolve(ctx: StageContext, loaded: LoadedQuestion, origin: Provenance) -> str:
    q, st = loaded.question, loaded.state
    if st.outcome is not None and st.outcome.finished:
        return st.outcome.status
    gen = st.by_origin(Origin.GENERATED)
    if len(gen) < ctx.cfg.paths_per_question or any(p.id not in st.verdicts for p in gen):
        raise StageIncomplete(
            f"question {q.id}: generation or verification is incomplete; run those stages first"
        )
    correct = [p for p in gen if _passes(st, q, p)]
    tiers = ctx.cfg.tiers
    tier = assign_tier(
        len(correct), easy_min_correct=tiers.easy_min_correct, medium_min_correct=tiers.medium_min_correct
    )
    routed = _Routed(loaded, gen, correct, _error_reasons(st, gen), origin)
    decision = await _BY_TIER[tier](ctx, routed)
    write = partial(
        stage_writes.write_resolution,
        question_id=q.id,
        run_id=origin.run_id,
        tier=tier.value,
        n_paths=len(gen),
        n_correct=len(correct),
        accepted=decision.accepted,
        rejection_reason=decision.rejection_reason,
        simulated=ctx.cfg.simulated,
    )
    dropped = await ctx.write(q.id, write)
    status = QuestionStatus.RESOLVED if decision.accepted else QuestionStatus.REJECTED
    outcome = OutcomeRow(
        status,
        tier.value,
        len(gen),
        len(correct),
        len(decision.accepted),
        decision.rejection_reason,
        origin.run_id,
    )
    loaded.state.decide(outcome, decision.accepted, dropped)
    return status


# --------------------------------------------------------------------------- stage 4: summarisation


async def summarize(
    ctx: StageContext, question_id: int, prov: Provenance, carried: Carried | None = None
) -> str | None:
    """Summarise each accepted path; the question is accepted once every kept path has its summary.

    A path whose summary stays unusable (truncated, empty) after every re-ask is dropped from the
    accepted paths with that reason; the question goes on with the others. Only when no accepted path
    is left does the stage fail, permanently (``unusable``): its question is set aside with the reason.
    """
    async with ctx.question(question_id, carried) as loaded:
        return await _summarize(ctx, loaded, prov)


async def _summarize(ctx: StageContext, loaded: LoadedQuestion, origin: Provenance) -> str | None:
    q, st = loaded.question, loaded.state
    if st.outcome is None or st.outcome.status != QuestionStatus.RESOLVED:
        return st.outcome.status if st.outcome else None
    done = SUMMARIZE.judged(st)
    todo = [st.path(a.path_id) for a in st.accepted if a.path_id not in done]
    judged = await ask_judge(ctx, q, SUMMARIZE, todo, origin)
    rows, dropped = [], {}
    for j in judged.judgments:
        if j.call.error is not None:
            continue
        row = summary_record(j)
        if row is not None:
            rows.append(row)
        else:
            why = "truncated" if j.call.completions and j.call.completions[0].truncated else "unparseable"
            dropped[j.path.id] = f"summary {why} after {ctx.cfg.output_retries} re-ask(s)"
    transport_failed = any(out.error is not None for out in judged.outcomes)
    kept = len(st.summaries) + len(rows)
    complete = not transport_failed and kept > 0
    write = partial(
        stage_writes.write_summaries,
        calls=judged.calls,
        summaries=rows,
        question_id=q.id,
        complete=complete,
        dropped=dropped,
    )
    st.add_summaries(rows, await ctx.write(q.id, write), dropped, complete)
    raise_if_failed(SUMMARIZE.stage, q, judged.outcomes)
    if not complete:
        raise StageIncomplete(
            f"summarisation of question {q.id}: no accepted path has a usable summary "
            f"({'; '.join(sorted(set(dropped.values())))})",
            unusable=True,
        )
    return QuestionStatus.ACCEPTED
