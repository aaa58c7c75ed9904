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
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, derive_seed
from reasonmed.agents.generator import generate_paths
from reasonmed.agents.ranker import score_path
from reasonmed.agents.refiner import refine_path
from reasonmed.agents.regenerator import regenerate_path
from reasonmed.agents.summarizer import summarize_path
from reasonmed.agents.verifier import verify_path
from reasonmed.answer_guard import passes
from reasonmed.config import PipelineConfig
from reasonmed.db import pipeline_repo as repo
from reasonmed.db.pipeline_repo import FINISHED, PathRow, QuestionState, StageKeys, now
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import clean_reasoning, extract_answer, parse_summary
from reasonmed.pipeline.failures import StageIncomplete
from reasonmed.prompts import PromptTemplate
from reasonmed.structured_output import SCORE_SCHEMA, VERDICT_SCHEMA, format_for
from reasonmed.tiers import RankCandidate, Tier, assign_tier, select_top

P = ParamSpec("P")
T = TypeVar("T")


def stage_keys(cfg: PipelineConfig) -> StageKeys:
    a = cfg.agents
    model = lambda ep: cfg.endpoints[ep].model  # noqa: E731
    return StageKeys(
        verifier=(model(a.verifier.endpoint), cfg.prompt("verify").sha256),
        ranker=(model(a.ranker.endpoint), cfg.prompt("rank").sha256),
        summarizer=(model(a.summarizer.endpoint), cfg.prompt("summarize").sha256),
        refiner=(model(a.refiner.endpoint), _family(cfg.prompt("refine"))),
        regenerator=(model(a.regenerator.endpoint), _family(cfg.prompt("regenerate"))),
    )


def _family(t: PromptTemplate) -> tuple[str, ...]:
    return (t.sha256, t.reask("truncated").sha256, t.reask("unparseable").sha256)


def _written_now(ctx: StageContext, paths: Sequence[PathRow], origin: str) -> list[PathRow]:
    """The refined or regenerated paths the configured writer (model and prompt) produced; paths an earlier
    refiner or regenerator wrote stay stored but no longer count."""
    model, shas = ctx.keys.writes(origin)
    return [p for p in paths if p.origin == origin and p.model == model and p.prompt_sha256 in shas]


def _write_key(have: set[str], base: str, ctx: StageContext, origin: str) -> str:
    """``base`` (e.g. ``ref/<parent>``) unless an earlier writer's path holds it; then base@<model+prompt>."""
    if base not in have:
        return base
    model, shas = ctx.keys.writes(origin)
    return f"{base}@{hashlib.sha256(f'{model}|{shas[0]}'.encode()).hexdigest()[:12]}"


class BackendSource:
    """Anything that hands out a backend per endpoint name (the LLM registry)."""

    def get(self, name: str) -> ChatBackend:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass
class StageContext:
    engine: Engine
    cfg: PipelineConfig
    backends: BackendSource
    run_id: int | None = None

    def model_of(self, endpoint: str) -> str:
        return self.cfg.endpoints[endpoint].model

    @property
    def verifier_model(self) -> str:
        return self.model_of(self.cfg.agents.verifier.endpoint)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Database work runs in a worker thread so the event loop keeps every endpoint busy."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    @property
    def keys(self) -> StageKeys:
        """(model, prompt sha) per judged stage: which stored verdicts, scores and summaries are current."""
        return stage_keys(self.cfg)

    async def state(self, question_id: int) -> QuestionState:
        return await self.db(repo.load_state, self.engine, question_id, self.keys, simulated=self.cfg.simulated)


Provenance = dict[str, Any]  # run_id, prefect_flow_run_id, prefect_task_run_id


def gen_path_key(endpoint: str, temperature: float, sample: int) -> str:
    return f"gen/{endpoint}/{temperature:g}/{sample}"


def _call_row(q: QuestionView, call_key: str, out: CallOutcome, prov: Provenance) -> dict[str, Any]:
    first = out.completions[0] if out.completions else None
    finish = None
    if out.completions:
        finish = "length" if any(c.finish_reason == "length" for c in out.completions) else first.finish_reason  # type: ignore[union-attr]
    return {
        "call_key": call_key, "question_id": q.id, "run_id": prov.get("run_id"), "role": out.role,
        "endpoint": out.endpoint, "model": out.model, "temperature": out.sampling.temperature,
        "top_p": out.sampling.top_p, "max_tokens": out.sampling.max_tokens, "seed": out.seed, "n": out.n,
        "prompt_sha256": out.prompt_sha256, "request_id": first.request_id if first else None,
        "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
        "latency_ms": out.latency_ms, "finish_reason": finish,
        "status": "ok" if out.error is None else "error",
        "error_kind": out.error.kind if out.error else None,
        "error": str(out.error)[:2000] if out.error else None,
        "attempts": max(out.attempts, 1),
        "prefect_flow_run_id": prov.get("prefect_flow_run_id"),
        "prefect_task_run_id": prov.get("prefect_task_run_id"),
        "created_at": now(),
    }


def _path_row(
    q: QuestionView, out: CallOutcome, i: int, call_key: str, prov: Provenance, *, path_key: str, origin: str,
    parent: int | None, sample_index: int, generation_order: int,
) -> dict[str, Any]:
    c = out.completions[i]
    clean = clean_reasoning(c.text)
    return {
        "question_id": q.id, "path_key": path_key, "origin": origin, "role": out.role, "parent_path_id": parent,
        "call_key": call_key, "run_id": prov.get("run_id"), "endpoint": out.endpoint, "model": out.model,
        "temperature": out.sampling.temperature, "sample_index": sample_index, "generation_order": generation_order,
        "prompt_sha256": out.variant_sha256(i), "raw_text": c.text, "clean_text": clean,
        "extracted_answer": extract_answer(clean, q.options), "finish_reason": c.finish_reason,
        "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "latency_ms": c.latency_ms,
        "created_at": now(),
    }


def _failures(outcomes: Sequence[CallOutcome]) -> list[str]:
    return [f"{o.role} on {o.endpoint}: {o.error.kind}: {o.error}" for o in outcomes if o.error is not None]


def _raise_if_failed(stage: str, q: QuestionView, outcomes: Sequence[CallOutcome]) -> None:
    failed = _failures(outcomes)
    if failed:
        raise StageIncomplete(
            f"{stage} of question {q.id}: {len(failed)} request(s) failed; first: {failed[0]}",
            error_kinds=[o.error.kind for o in outcomes if o.error is not None],
        )


# --------------------------------------------------------------------------- stage 1: generation


async def generate(ctx: StageContext, question_id: int, prov: Provenance) -> int:
    """Write every missing generated path (models x temperatures x samples). Returns paths written."""
    q = await ctx.db(repo.load_question, ctx.engine, question_id)
    st = await ctx.state(question_id)
    if st.outcome and st.outcome["status"] in FINISHED:
        return 0
    have = {p.path_key for p in st.paths}
    jobs: list[tuple[str, Any, int, int, int]] = []  # (call_key, coroutine, first sample, count, order base)
    order = 0
    for gi, g in enumerate(ctx.cfg.agents.generators):
        backend = ctx.backends.get(g.endpoint)
        template = ctx.cfg.prompt("generate", gi)
        for t in g.temperatures:
            base_seed = derive_seed(ctx.cfg.seed, q.content_hash, "gen", g.endpoint, f"{t:g}")
            missing = [s for s in range(g.paths_per_temperature) if gen_path_key(g.endpoint, t, s) not in have]
            # Contiguous runs of missing samples go out as one n-request (one prefill on vLLM).
            runs: list[list[int]] = []
            for s in missing:
                if runs and runs[-1][-1] == s - 1:
                    runs[-1].append(s)
                else:
                    runs.append([s])
            for run in runs:
                key = f"q{q.id}/gen/{g.endpoint}/{t:g}/{run[0]}" + (f"+{len(run)}" if len(run) > 1 else "")
                coro = generate_paths(
                    backend, q, sampling=Sampling(t, g.top_p, g.max_tokens), seed=base_seed + run[0], n=len(run),
                    reasks=ctx.cfg.output_retries, template=template,
                )
                jobs.append((key, coro, run[0], len(run), order))
            order += g.paths_per_temperature
    if not jobs:
        return 0
    outcomes = await asyncio.gather(*(j[1] for j in jobs))
    calls, paths = [], []
    for (key, _, first, _count, order_base), out in zip(jobs, outcomes, strict=True):
        calls.append(_call_row(q, key, out, prov))
        if out.error is None:
            for i in range(len(out.completions)):
                s = first + i
                paths.append(
                    _path_row(
                        q, out, i, key, prov, path_key=gen_path_key(out.endpoint, out.sampling.temperature, s),
                        origin="generated", parent=None, sample_index=s, generation_order=order_base + s,
                    )
                )
    await ctx.db(repo.save_paths, ctx.engine, calls, paths)
    _raise_if_failed("generation", q, outcomes)
    return len(paths)


# --------------------------------------------------------------------------- stage 2: verification


async def _verify_missing(ctx: StageContext, q: QuestionView, st: QuestionState, paths: Sequence[PathRow], prov: Provenance) -> None:
    todo = [p for p in paths if p.id not in st.verdicts]
    if not todo:
        return
    v = ctx.cfg.agents.verifier
    backend = ctx.backends.get(v.endpoint)
    fmt = format_for(v.structured_output, ctx.cfg.endpoints[v.endpoint].structured_dialect, "verdict", VERDICT_SCHEMA)
    sampling = Sampling(v.temperature, v.top_p, v.max_tokens, fmt)
    template = ctx.cfg.prompt("verify")
    results = await asyncio.gather(
        *(
            verify_path(
                backend, q, p.clean_text, sampling=sampling,
                seed=derive_seed(ctx.cfg.seed, q.content_hash, "verify", p.path_key), attempts=v.parse_attempts,
                template=template,
            )
            for p in todo
        )
    )
    calls, verdicts = [], []
    for p, (call, verdict) in zip(todo, results, strict=True):
        key = f"q{q.id}/verify/p{p.id}/{call.model}/{template.version}"
        calls.append(_call_row(q, key, call, prov))
        if verdict is not None:
            verdicts.append({
                "path_id": p.id, "question_id": q.id, "call_key": key, "run_id": prov.get("run_id"),
                "verifier_model": call.model, "prompt_sha256": template.sha256, "outcome": verdict.outcome, "reason": verdict.reason,
                "raw_output": verdict.raw_output, "parse_attempts": max(call.attempts, 1), "created_at": now(),
            })
    await ctx.db(repo.save_verdicts, ctx.engine, calls, verdicts)
    _raise_if_failed("verification", q, [c for c, _ in results])
    for vrow in verdicts:  # keep the in-memory state current for the caller
        st.verdicts[vrow["path_id"]] = (-1, vrow["outcome"], vrow["reason"])


async def verify(ctx: StageContext, question_id: int, prov: Provenance) -> None:
    """Verify every generated path that has no verdict from the configured verifier yet."""
    q = await ctx.db(repo.load_question, ctx.engine, question_id)
    st = await ctx.state(question_id)
    if st.outcome and st.outcome["status"] in FINISHED:
        return
    await _verify_missing(ctx, q, st, st.by_origin("generated"), prov)


# --------------------------------------------------------------------------- stage 3: tiered resolution


async def _score_missing(ctx: StageContext, q: QuestionView, st: QuestionState, paths: Sequence[PathRow], prov: Provenance) -> None:
    todo = [p for p in paths if p.id not in st.scores]
    if not todo:
        return
    r = ctx.cfg.agents.ranker
    backend = ctx.backends.get(r.endpoint)
    fmt = format_for(r.structured_output, ctx.cfg.endpoints[r.endpoint].structured_dialect, "score", SCORE_SCHEMA)
    sampling = Sampling(r.temperature, r.top_p, r.max_tokens, fmt)
    template = ctx.cfg.prompt("rank")
    results = await asyncio.gather(
        *(
            score_path(backend, q, p.clean_text, sampling=sampling,
                       seed=derive_seed(ctx.cfg.seed, q.content_hash, "rank", p.path_key), attempts=r.parse_attempts,
                       template=template)
            for p in todo
        )
    )
    calls, scores = [], []
    for p, (call, parsed) in zip(todo, results, strict=True):
        key = f"q{q.id}/rank/p{p.id}/{call.model}/{template.version}"
        calls.append(_call_row(q, key, call, prov))
        if call.error is None:
            scores.append({
                "path_id": p.id, "question_id": q.id, "call_key": key, "run_id": prov.get("run_id"),
                "ranker_model": call.model, "prompt_sha256": template.sha256, "score": parsed.score if parsed else None,
                "justification": parsed.justification if parsed else None,
                "raw_output": call.completions[0].text if call.completions else None, "created_at": now(),
            })
    await ctx.db(repo.save_scores, ctx.engine, calls, scores)
    _raise_if_failed("ranking", q, [c for c, _ in results])
    for srow in scores:
        st.scores[srow["path_id"]] = srow["score"]


def _ranked(st: QuestionState, paths: Sequence[PathRow], k: int) -> list[PathRow]:
    cands = [RankCandidate(p.id, p.generation_order, st.scores.get(p.id)) for p in paths]
    return [st.path(c.path_id) for c in select_top(cands, k)]


async def _write_new_paths(
    ctx: StageContext, q: QuestionView, prov: Provenance,
    jobs: Sequence[tuple[str, str, int | None, int, Any]],  # (call_key, path_key, parent, sample, coroutine)
) -> None:
    if not jobs:
        return
    outcomes = await asyncio.gather(*(j[4] for j in jobs))
    calls, paths = [], []
    for (key, path_key, parent, sample, _), out in zip(jobs, outcomes, strict=True):
        calls.append(_call_row(q, key, out, prov))
        if out.error is None:
            origin = "refined" if out.role == "refiner" else "regenerated"
            paths.append(_path_row(q, out, 0, key, prov, path_key=path_key, origin=origin, parent=parent,
                                   sample_index=sample, generation_order=1000 + sample))
    await ctx.db(repo.save_paths, ctx.engine, calls, paths)
    _raise_if_failed(outcomes[0].role, q, outcomes)


def _error_reasons(st: QuestionState, paths: Sequence[PathRow]) -> list[str]:
    """The verifier's analyses of the failed attempts, de-duplicated, in generation order.

    Only Error verdicts carry an analysis: an unparseable verdict's reason is a placeholder, not advice.
    """
    seen: dict[str, None] = {}
    for p in paths:
        v = st.verdicts.get(p.id)
        if v and v[1] == "error" and v[2]:
            seen.setdefault(v[2].strip(), None)
    return list(seen)


def _verdict_id(st: QuestionState, path_id: int) -> int:
    return st.verdicts[path_id][0]


async def resolve(ctx: StageContext, question_id: int, prov: Provenance) -> str:
    """Route the question by tier and decide its accepted paths (or reject it, with the reason).

    A question still ``resolved`` (not yet summarised, or reopened because a stage's model or prompt
    changed) is decided again: every step is keyed, so only what the new keys lack is asked for, and an
    unchanged decision is written back unchanged.
    """
    q = await ctx.db(repo.load_question, ctx.engine, question_id)
    st = await ctx.state(question_id)
    if st.outcome is not None and st.outcome["status"] in FINISHED:
        return st.outcome["status"]
    cfg, tiers = ctx.cfg, ctx.cfg.tiers
    gen = st.by_origin("generated")
    if len(gen) < cfg.paths_per_question or any(p.id not in st.verdicts for p in gen):
        raise StageIncomplete(f"question {q.id}: generation or verification is incomplete; run those stages first")
    # The answer guard: "correct" below always means judged Correct AND concluding with the keyed option.
    def ok(p: PathRow) -> bool:
        return passes(st.verdicts[p.id][1], p.extracted_answer, q.answer)

    correct = [p for p in gen if ok(p)]
    tier = assign_tier(len(correct), easy_min_correct=tiers.easy_min_correct, medium_min_correct=tiers.medium_min_correct)
    errors = _error_reasons(st, gen)
    accepted: list[tuple[int, int]] = []
    reason: str | None = None

    if tier is Tier.EASY:
        await _score_missing(ctx, q, st, correct, prov)
        accepted = [(p.id, _verdict_id(st, p.id)) for p in _ranked(st, correct, tiers.keep_top)]
    elif tier is Tier.MEDIUM:
        rf = cfg.agents.refiner
        await _score_missing(ctx, q, st, correct, prov)
        best = _ranked(st, correct, rf.max_paths)
        have = {p.path_key for p in st.paths}
        done = {p.parent_path_id for p in _written_now(ctx, st.paths, "refined")}
        backend = ctx.backends.get(rf.endpoint)
        keys = {p.id: _write_key(have, f"ref/{p.path_key}", ctx, "refined") for p in best}
        jobs = [
            (f"q{q.id}/refine/{keys[p.id].removeprefix('ref/')}", keys[p.id], p.id, i,
             refine_path(backend, q, p.clean_text, errors, sampling=Sampling(rf.temperature, rf.top_p, rf.max_tokens),
                         seed=derive_seed(cfg.seed, q.content_hash, "refine", p.path_key), reasks=cfg.output_retries,
                         template=cfg.prompt("refine")))
            for i, p in enumerate(best) if p.id not in done
        ]
        await _write_new_paths(ctx, q, prov, jobs)
        st = await ctx.state(question_id)
        refined = {p.parent_path_id: p for p in _written_now(ctx, st.by_origin("refined"), "refined")}
        await _verify_missing(ctx, q, st, list(refined.values()), prov)
        st = await ctx.state(question_id)
        # A refined path that passes re-verification replaces its parent; one that fails falls back to
        # the parent, which the verifier already judged Correct, so no sound path is lost.
        for parent in best:
            child = refined.get(parent.id)
            if child is not None and ok(child):
                accepted.append((child.id, _verdict_id(st, child.id)))
            else:
                accepted.append((parent.id, _verdict_id(st, parent.id)))
        accepted = accepted[: tiers.keep_top]
    else:
        # Difficult: the refiner, then a stronger reasoning model (spec, stage 3). The refiner corrects the
        # question's best attempt (its one Correct path if it has one, else a failed attempt) with every
        # error reason; the regenerator writes deeper paths from a failed attempt and the same reasons.
        # Both are independent of each other, so they run at once; every new path is verified again.
        rf, rg = cfg.agents.refiner, cfg.agents.regenerator
        failed = [p for p in gen if not ok(p)]
        attempt = next((p for p in failed if p.extracted_answer is not None), failed[0] if failed else gen[0])
        base = correct[0] if correct else attempt
        have = {p.path_key for p in st.paths}
        refined_now = {p.parent_path_id for p in _written_now(ctx, st.paths, "refined")}
        regen_now = {p.sample_index for p in _written_now(ctx, st.paths, "regenerated")}
        refine_backend, regen_backend = ctx.backends.get(rf.endpoint), ctx.backends.get(rg.endpoint)
        ref_key = _write_key(have, f"ref/{base.path_key}", ctx, "refined")
        jobs = [
            (f"q{q.id}/refine/{ref_key.removeprefix('ref/')}", ref_key, base.id, 0,
             refine_path(refine_backend, q, base.clean_text, errors,
                         sampling=Sampling(rf.temperature, rf.top_p, rf.max_tokens),
                         seed=derive_seed(cfg.seed, q.content_hash, "refine", base.path_key), reasks=cfg.output_retries,
                         template=cfg.prompt("refine")))
        ] if base.id not in refined_now else []
        regen_keys = {i: _write_key(have, f"regen/{i}", ctx, "regenerated") for i in range(rg.paths)}
        jobs += [
            (f"q{q.id}/{regen_keys[i]}", regen_keys[i], attempt.id, i,
             regenerate_path(regen_backend, q, attempt.clean_text, errors,
                             sampling=Sampling(rg.temperature, rg.top_p, rg.max_tokens),
                             seed=derive_seed(cfg.seed, q.content_hash, "regen", i), reasks=cfg.output_retries,
                             template=cfg.prompt("regenerate")))
            for i in range(rg.paths) if i not in regen_now
        ]
        await _write_new_paths(ctx, q, prov, jobs)
        st = await ctx.state(question_id)
        refined = [p for p in _written_now(ctx, st.by_origin("refined"), "refined") if p.parent_path_id == base.id]
        regen = _written_now(ctx, st.by_origin("regenerated"), "regenerated")
        await _verify_missing(ctx, q, st, [*refined, *regen], prov)
        st = await ctx.state(question_id)
        # A refined path that fails re-verification falls back to its parent only if that was Correct.
        first = [p for p in refined if ok(p)] or [p for p in correct if p.id == base.id]
        chosen = first + [p for p in regen if ok(p)]
        accepted = [(p.id, _verdict_id(st, p.id)) for p in chosen][: tiers.keep_top]
        if not accepted:
            reason = (f"difficult tier: neither the refined path nor any of the {len(regen)} regenerated paths "
                      "was verified correct")

    await ctx.db(
        repo.save_resolution, ctx.engine, question_id=q.id, run_id=prov.get("run_id"), tier=tier.value,
        n_paths=len(gen), n_correct=len(correct), accepted=accepted, rejection_reason=reason,
        simulated=ctx.cfg.simulated,
    )
    return "resolved" if accepted else "rejected"


# --------------------------------------------------------------------------- stage 4: summarisation


async def summarize(ctx: StageContext, question_id: int, prov: Provenance) -> str | None:
    """Summarise each accepted path; the question is accepted once every kept path has its summary.

    A path whose summary stays unusable (truncated, empty) after every re-ask is dropped from the
    accepted paths with that reason; the question goes on with the others. Only when no accepted path
    is left does the stage fail, permanently (``unusable``): its question is set aside with the reason.
    """
    q = await ctx.db(repo.load_question, ctx.engine, question_id)
    st = await ctx.state(question_id)
    if st.outcome is None or st.outcome["status"] != "resolved":
        return st.outcome["status"] if st.outcome else None
    sm = ctx.cfg.agents.summarizer
    backend = ctx.backends.get(sm.endpoint)
    template = ctx.cfg.prompt("summarize")
    todo = [st.path(pid) for pid, _ in st.accepted if pid not in st.summaries]
    outcomes = await asyncio.gather(
        *(
            summarize_path(backend, q, p.clean_text, sampling=Sampling(sm.temperature, sm.top_p, sm.max_tokens),
                           seed=derive_seed(ctx.cfg.seed, q.content_hash, "summarize", p.path_key),
                           reasks=ctx.cfg.output_retries, template=template)
            for p in todo
        )
    )
    calls, rows, dropped = [], [], {}
    for p, out in zip(todo, outcomes, strict=True):
        key = f"q{q.id}/summarize/p{p.id}/{out.model}/{template.version}"
        calls.append(_call_row(q, key, out, prov))
        if out.error is not None:
            continue
        text = parse_summary(out.completions[0].text) if out.accepted and out.accepted[0] else None
        if text is not None:
            rows.append({
                "path_id": p.id, "question_id": q.id, "call_key": key, "run_id": prov.get("run_id"),
                "summarizer_model": out.model, "prompt_sha256": template.sha256, "text": text, "created_at": now(),
            })
        else:
            why = "truncated" if out.completions and out.completions[0].finish_reason == "length" else "unparseable"
            dropped[p.id] = f"summary {why} after {ctx.cfg.output_retries} re-ask(s)"
    transport_failed = any(out.error is not None for out in outcomes)
    kept = len(st.summaries) + len(rows)
    complete = not transport_failed and kept > 0
    await ctx.db(repo.save_summaries, ctx.engine, calls, rows, question_id=q.id, complete=complete, dropped=dropped)
    _raise_if_failed("summarisation", q, outcomes)
    if not complete:
        raise StageIncomplete(
            f"summarisation of question {q.id}: no accepted path has a usable summary "
            f"({'; '.join(sorted(set(dropped.values())))})",
            unusable=True,
        )
    return "accepted"
