"""`reasonmed show` and `reasonmed run --dry-run` against a finished simulated run (the README's main
command on a bounded subset, then an export): their figures are checked against SQL."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from sqlalchemy import Engine, text

from reasonmed.db.engine import make_engine
from tests.fixtures_finished import LIMIT, FinishedRun
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS


def _rows(engine: Engine, sql: str, **params: object) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text(sql), params).mappings()]


def test_run_ends_with_the_database_path_and_the_next_step(finished: FinishedRun) -> None:
    assert f"database: {(finished.folder / 'reasonmed.db').resolve()}" in finished.run_stdout
    assert (
        "next: `reasonmed audit`" in finished.run_stdout
        and "reasonmed show QUESTION_ID" in finished.run_stdout
    )


def _question_with(engine: Engine, where: str) -> int | None:
    rows = _rows(
        engine,
        f"""select o.question_id from question_outcomes o where {where} order by o.question_id limit 1""",
    )
    return int(rows[0]["question_id"]) if rows else None  # type: ignore[arg-type]


def test_show_json_matches_the_database(finished: FinishedRun) -> None:
    e = finished.engine
    refined = _question_with(
        e,
        "exists (select 1 from reasoning_paths p where p.question_id = o.question_id "
        "and p.origin <> 'generated') and o.status = 'accepted'",
    )
    assert refined is not None, "the run should have refined or regenerated a path"
    out = finished.cli("show", str(refined), "--json")
    assert out.returncode == 0, out.stderr
    story = json.loads(out.stdout)
    outcome = _rows(
        e,
        "select tier, status, n_correct, n_paths, n_accepted from question_outcomes where question_id = :q",
        q=refined,
    )[0]
    assert {k: story[k] for k in outcome} == outcome
    paths = _rows(
        e,
        """select p.id, p.origin, p.model, p.temperature, p.extracted_answer, p.parent_path_id,
                               v.outcome as verdict, v.reason as verdict_reason, s.score as rank_score, a.rank as accepted_rank
                        from reasoning_paths p left join verdicts v on v.path_id = p.id
                        left join path_scores s on s.path_id = p.id left join accepted_paths a on a.path_id = p.id
                        where p.question_id = :q""",
        q=refined,
    )
    shown = {p["id"]: {k: p[k] for k in paths[0]} for p in story["paths"]}
    assert shown == {p["id"]: p for p in paths}
    assert sum(1 for p in story["paths"] if p["origin"] == "generated") == outcome["n_paths"] == 9
    assert any(
        p["origin"] != "generated" and p["parent_path_id"] is not None and p["verdict"]
        for p in story["paths"]
    )
    summaries = {
        r["path_id"]: r["text"]
        for r in _rows(e, "select path_id, text from summaries where question_id = :q", q=refined)
    }
    assert {p["id"]: p["summary"] for p in story["paths"] if p["id"] in summaries} == summaries
    exported = _rows(
        e,
        """select v.version, s.path_id from dataset_samples s join dataset_versions v on v.id = s.dataset_version_id
                           where s.question_id = :q order by v.version, s.path_id""",
        q=refined,
    )
    assert (
        exported
        and [{"version": r["version"], "path_id": r["path_id"]} for r in story["exported"]] == exported
    )
    # Every version exported so far (other tests may export the shared run again) holds each accepted path once.
    per_version: dict[int, int] = {}
    for r in exported:
        per_version[r["version"]] = per_version.get(r["version"], 0) + 1
    assert set(per_version.values()) == {outcome["n_accepted"]}


def test_show_terminal_view_fits_100_columns(finished: FinishedRun) -> None:
    e = finished.engine
    for where in ("o.status = 'accepted' and o.tier = 'medium'", "o.status = 'rejected'", "o.tier = 'easy'"):
        qid = _question_with(e, where)
        if qid is None:
            continue
        out = finished.cli("show", str(qid), columns=200)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert max(len(line) for line in lines) <= 100, max(lines, key=len)
        tier = _rows(
            e, "select tier, status, n_correct from question_outcomes where question_id = :q", q=qid
        )[0]
        assert (
            f"tier {tier['tier']}: {tier['n_correct']} of 9 generated paths judged correct -> {tier['status']}"
            in out.stdout
        )
        n_paths = _rows(e, "select count(*) as n from reasoning_paths where question_id = :q", q=qid)[0]["n"]
        path_rows = [line for line in lines if re.match(r"^\s*\d+\s+(generated|ref|reg)", line)]
        assert len(path_rows) == n_paths


def _dry_run_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 9 and cells[0] in (
            "generator",
            "verifier",
            "ranker",
            "refiner",
            "regenerator",
            "summarizer",
        ):
            rows[(cells[0], cells[1])] = cells
    return rows


def test_dry_run_scales_the_stored_history(finished: FinishedRun) -> None:
    e = finished.engine
    pending = _rows(
        e,
        """select count(*) as n from questions q where not q.is_benchmark_test and q.id not in
                          (select question_id from question_outcomes where status in ('accepted','rejected'))""",
    )[0]["n"]
    assert pending == 500 - LIMIT
    out = finished.cli("run", "--dry-run", "--limit", "100", columns=200)
    assert out.returncode == 0, out.stderr
    assert (
        f"dry run: 100 pending question(s); figures from history of {LIMIT} finished question(s)"
        in out.stdout
    )
    history = _rows(
        e,
        """select role, endpoint, count(*) as calls, avg(prompt_tokens) as p, avg(completion_tokens) as c
                          from llm_calls where status = 'ok' and question_id in
                          (select question_id from question_outcomes where status in ('accepted','rejected'))
                          group by role, endpoint""",
    )
    rows = _dry_run_rows(out.stdout)
    assert rows and all(
        r[2] == "history"
        for r in rows.values()
        if (r[0], r[1]) in {(h["role"], h["endpoint"]) for h in history}
    )
    total = 0
    for h in history:
        calls = round(h["calls"] / LIMIT * 100)  # type: ignore[operator]
        row = rows[(h["role"], h["endpoint"])]  # type: ignore[index]
        assert row[4] == f"{calls:,}", (h, row)
        assert row[5] == f"{round(calls * h['p']):,}" and row[6] == f"{round(calls * h['c']):,}"  # type: ignore[operator]
        total += calls
    if len(rows) == len(history):
        assert f"total: {total:,} calls" in out.stdout
    assert "wall time at the configured caps (max_in_flight per endpoint): ~" in out.stdout
    # Nothing was claimed or written.
    assert _rows(e, "select count(*) as n from pipeline_runs where kind = 'build'")[0]["n"] == 1


def test_dry_run_without_history_uses_the_config_limits(tmp_path: Path) -> None:
    from reasonmed.config import load_pipeline_config
    from reasonmed.db import migrate
    from reasonmed.ingest.service import ingest_file, load_id_list
    from reasonmed.pipeline.dry_run import plan_run

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    ingest_file(engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=load_id_list(PUBMEDQA_TEST_IDS))
    cfg = load_pipeline_config(None)
    est = plan_run(engine, cfg, limit=40)
    assert est.pending == 40 and est.finished_history == 0 and est.wall_s is None
    gen = [s for s in est.stages if s.role == "generator"]
    assert sum(s.calls for s in gen) == 40 * sum(len(g.temperatures) for g in cfg.agents.generators)
    assert all(s.completion_tokens == s.calls * cfg.agents.generators[0].max_tokens for s in gen)
    summ = next(s for s in est.stages if s.role == "summarizer")
    assert summ.calls == 40 * cfg.tiers.keep_top and summ.basis == "config"
    engine.dispose()


def test_nightly_dry_run_parameter(finished: FinishedRun, prefect_harness: None) -> None:
    """The nightly flow's ``dry_run`` parameter returns the same estimate as the CLI and writes nothing."""
    import asyncio

    from reasonmed.config import load_pipeline_config
    from reasonmed.flows.nightly import nightly_growth
    from reasonmed.pipeline.dry_run import plan_run
    from tests.fixtures_pipeline import use_database

    old = os.environ.get("REASONMED_DATABASE_URL")
    use_database(finished.url)
    try:
        result = asyncio.run(
            nightly_growth(input_location=str(PUBMEDQA_FILE), max_questions=30, dry_run=True)
        )
    finally:
        if old is None:
            os.environ.pop("REASONMED_DATABASE_URL", None)
        else:
            os.environ["REASONMED_DATABASE_URL"] = old
    expected = plan_run(finished.engine, load_pipeline_config(None), limit=30).as_dict()
    assert result == {"dry_run": expected}
    assert result["dry_run"]["pending"] == 30 and result["dry_run"]["finished_history"] == LIMIT
    assert (
        _rows(finished.engine, "select count(*) as n from pipeline_runs where kind = 'nightly'")[0]["n"] == 0
    )
