"""The rolled-up audit views (migration 0017): on Postgres audit_token_usage and audit_verifier_accuracy count
the rows committed before their last refresh and say when that was; rows written later show after the next
refresh (on demand, at the end of a build run, in the nightly run). SQLite's views stay live.

Expected values are worked by hand from test_audits.py's fixture (its EXPECTED rows) plus the rows added here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from reasonmed.cli import app
from reasonmed.config import get_settings
from reasonmed.db import audit_repo, audit_rollups
from reasonmed.db.engine import make_engine
from reasonmed.db.models import LLMCall, ReasoningPath, Verdict
from reasonmed.nightly.night import BuildDone, Night, NightCalls
from reasonmed.nightly.request import NightRequest
from tests.integration.test_audits import EXPECTED, T0, build_fixture

V_DAY1 = dict(model="V", stage="verifier", day="2026-11-20")
V_DAY3 = dict(model="V", stage="verifier", day="2026-11-22")
MB_MEDQA = dict(model="mB", temperature=0.7, source="medqa", origin="generated", verifier_model="V")


def _row(engine: Engine, view: str, **key: Any) -> dict[str, Any] | None:
    rows = [r for r in audit_repo.view_rows(engine, view) if all(r[k] == v for k, v in key.items())]
    assert len(rows) <= 1
    return rows[0] if rows else None


def _expected(view: str, **key: Any) -> dict[str, Any]:
    return next(r for r in EXPECTED[view] if all(r[k] == v for k, v in key.items()))


def _state(engine: Engine, view: str) -> audit_rollups.RollupState:
    return next(s for s in audit_rollups.rollup_states(engine) if s.view == view)


def _add_calls(engine: Engine, calls: list[tuple[datetime, float]], first: int) -> None:
    """Verifier calls of model V (100 prompt and 10 completion tokens each), at (created_at, latency_ms)."""
    with Session(engine) as s, s.begin():
        for i, (at, latency) in enumerate(calls, start=first):
            s.add(
                LLMCall(
                    call_key=f"late{i}",
                    endpoint="V",
                    role="verifier",
                    model="V",
                    temperature=0.0,
                    n=1,
                    prompt_tokens=100,
                    completion_tokens=10,
                    latency_ms=latency,
                    status="ok",
                    attempts=1,
                    created_at=at,
                    question_id=1,
                )
            )


def _add_judged_path(engine: Engine) -> None:
    """Path 13 of question 3 (medqa) by mB at 0.7, judged correct."""
    with Session(engine) as s, s.begin():
        s.add(
            ReasoningPath(
                id=13,
                question_id=3,
                path_key="k13",
                origin="generated",
                role="generator",
                run_id=1,
                endpoint="mB",
                model="mB",
                temperature=0.7,
                prompt_sha256="x",
                raw_text="path 13",
                clean_text="path 13",
                extracted_answer="B",
                created_at=T0,
            )
        )
        s.flush()
        s.add(
            Verdict(
                id=113,
                path_id=13,
                question_id=3,
                verifier_model="V",
                prompt_sha256="x",
                outcome="correct",
                created_at=T0,
            )
        )


def _with_fixture(url: str) -> Iterator[Engine]:
    """test_audits.py's rows, written after the database was migrated (so after the migration's refresh)."""
    eng = make_engine(url)
    build_fixture(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def fixture_engine(db_url: str) -> Iterator[Engine]:
    yield from _with_fixture(db_url)


@pytest.fixture
def pg_fixture_engine(pg_url: str) -> Iterator[Engine]:
    yield from _with_fixture(pg_url)


def test_rows_count_from_the_refresh_that_follows_them(fixture_engine: Engine) -> None:
    """Postgres: rows committed after a refresh are not counted until the next one, and the state says as of
    when; SQLite: the views are live and nothing is rolled up."""
    eng = fixture_engine
    rolled = audit_rollups.has_rollups(eng)
    # Written after the migration's refresh: on Postgres not counted yet.
    assert (audit_repo.view_rows(eng, "audit_token_usage") == []) is rolled
    assert (audit_repo.count_rows(eng, "audit_verifier_accuracy") == 0) is rolled

    before = datetime.now(UTC)
    states = audit_rollups.refresh_rollups(eng)
    after = datetime.now(UTC)
    if rolled:
        assert [s.view for s in states] == ["audit_token_usage", "audit_verifier_accuracy"]
        assert [s.rows for s in states] == [3, 7]
        assert all(before <= s.refreshed_at <= after and s.refresh_s >= 0 for s in states)
        assert audit_rollups.rollup_states(eng) == states
    else:
        assert states == [] and audit_rollups.rollup_states(eng) == []
    assert _row(eng, "audit_token_usage", **V_DAY1) == pytest.approx(
        _expected("audit_token_usage", **V_DAY1) | {"cost_usd": None}
    )
    assert _row(eng, "audit_verifier_accuracy", **MB_MEDQA) == pytest.approx(
        _expected("audit_verifier_accuracy", **MB_MEDQA)
    )

    # After the refresh: one more call in V's first day (1,000 ms), four in a new day (5..35 ms), one
    # more path of mB on medqa judged correct.
    _add_calls(eng, [(T0, 1000.0)] + [(T0 + timedelta(days=2), 5.0 + 10 * i) for i in range(4)], first=0)
    _add_judged_path(eng)
    # V's day 1, worked by hand: 21 calls, latencies 10..200 and 1000: mean 3100 / 21, p95 the 20th
    # (ceil(0.95 * 21)) sorted latency, 200. The new day: 4 calls, mean 20, p95 the 4th, 35.
    day1_after = _expected("audit_token_usage", **V_DAY1) | dict(
        calls=21,
        attempts=23,
        prompt_tokens=2100,
        completion_tokens=210,
        total_tokens=2310,
        mean_latency_ms=3100 / 21,
        p95_latency_ms=200.0,
        cost_usd=None,
    )
    day3 = V_DAY3 | dict(
        calls=4,
        failed_calls=0,
        attempts=4,
        prompt_tokens=400,
        completion_tokens=40,
        total_tokens=440,
        cost_usd=None,
        mean_latency_ms=20.0,
        p95_latency_ms=35.0,
    )
    # mB on medqa at 0.7 had paths 5 (unparseable) and 8 (correct); path 13 (correct) makes 2 of 3.
    mb_after = MB_MEDQA | dict(paths=3, correct=2, errors=0, unparseable=1, accuracy=2 / 3)
    if rolled:  # stale, and saying so: the state has not moved
        assert _row(eng, "audit_token_usage", **V_DAY1) == pytest.approx(
            _expected("audit_token_usage", **V_DAY1) | {"cost_usd": None}
        )
        assert _row(eng, "audit_token_usage", **V_DAY3) is None
        assert audit_repo.count_rows(eng, "audit_token_usage") == 3
        assert _row(eng, "audit_verifier_accuracy", **MB_MEDQA)["paths"] == 2  # type: ignore[index]
        assert audit_rollups.rollup_states(eng) == states
        later = audit_rollups.refresh_rollups(eng)
        assert [s.rows for s in later] == [4, 7]
        assert all(new.refreshed_at > old.refreshed_at for new, old in zip(later, states, strict=True))
    assert _row(eng, "audit_token_usage", **V_DAY1) == pytest.approx(day1_after)
    assert _row(eng, "audit_token_usage", **V_DAY3) == pytest.approx(day3)
    assert audit_repo.count_rows(eng, "audit_token_usage") == 4
    assert _row(eng, "audit_verifier_accuracy", **MB_MEDQA) == pytest.approx(mb_after)


def test_a_retried_call_that_moved_day_is_counted_once_in_its_new_day(fixture_engine: Engine) -> None:
    """A retry rewrites a call's created_at: the refresh recounts from the rows as they are, so the call
    leaves its old day (here the day's only call: the group goes) and joins the new one, never both."""
    eng = fixture_engine
    audit_rollups.refresh_rollups(eng)
    mA_day1 = dict(model="mA", stage="generator", day="2026-11-20")
    mA_day2 = dict(model="mA", stage="generator", day="2026-11-21")
    assert _row(eng, "audit_token_usage", **mA_day1)["calls"] == 1  # type: ignore[index]
    with eng.begin() as c:  # the call of question 3 (42.5 ms) retried an hour later, its second attempt
        c.execute(
            text(
                "UPDATE llm_calls SET created_at = :at, attempts = 2 WHERE role = 'generator' AND question_id = 3"
            ),
            {"at": T0 + timedelta(hours=1)},
        )
    audit_rollups.refresh_rollups(eng)
    assert _row(eng, "audit_token_usage", **mA_day1) is None
    # Day 2 now: latencies None, 30, 10 and 42.5: mean 27.5, p95 the 3rd (ceil(0.95 * 3)) of three, 42.5.
    assert _row(eng, "audit_token_usage", **mA_day2) == pytest.approx(
        mA_day2
        | dict(
            calls=4,
            failed_calls=0,
            attempts=5,
            prompt_tokens=12,
            completion_tokens=3,
            total_tokens=15,
            cost_usd=None,
            mean_latency_ms=27.5,
            p95_latency_ms=42.5,
        )
    )
    with eng.connect() as c:
        calls = c.execute(text("SELECT count(*) FROM llm_calls")).scalar_one()
        summed = c.execute(text("SELECT sum(calls) FROM audit_token_usage")).scalar_one()
    assert int(summed) == calls == 24


@pytest.mark.postgres
def test_refreshed_at_is_exact_for_a_row_committed_during_the_refresh(pg_fixture_engine: Engine) -> None:
    """The stated instant holds: every call committed before ``refreshed_at`` is counted. A call committed
    while the refresh waits for the table (after it read the instant, so after its snapshot began) is
    neither counted nor claimed; and readers meanwhile get the previous contents without waiting."""
    eng = pg_fixture_engine
    audit_rollups.refresh_rollups(eng)
    writer = eng.connect()
    writer.begin()
    writer.execute(text("LOCK TABLE llm_calls IN ACCESS EXCLUSIVE MODE"))  # the refresh must wait for it
    done: list[list[audit_rollups.RollupState]] = []
    refresh = threading.Thread(target=lambda: done.append(audit_rollups.refresh_rollups(eng)))
    refresh.start()
    try:
        with eng.connect() as watch:  # pg_locks is read afresh each time (pg_stat_activity is not)
            for _ in range(200):
                waiting = watch.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'llm_calls'::regclass AND NOT granted"
                    )
                ).scalar_one()
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting, "the refresh never waited for llm_calls"
        with eng.connect() as reader:  # the previous contents, at once
            reader.execute(text("SET lock_timeout = '2s'"))
            assert reader.execute(text("SELECT sum(calls) FROM audit_token_usage")).scalar_one() == 24
        writer.execute(
            text(
                "INSERT INTO llm_calls (call_key, endpoint, role, model, temperature, n, status, attempts, "
                "created_at, latency_ms) VALUES ('during', 'V', 'verifier', 'V', 0, 1, 'ok', 1, :at, 1.0)"
            ),
            {"at": T0},
        )
        writer.commit()
        committed_by = writer.execute(text("SELECT clock_timestamp()")).scalar_one()
    finally:
        writer.close()
        refresh.join(timeout=60)
    state = done[0][0]
    assert state.view == "audit_token_usage"
    counted = audit_repo.view_rows(eng, "audit_token_usage")
    assert sum(r["calls"] for r in counted) == 24  # not the call committed during the refresh
    assert state.refreshed_at < committed_by  # and the state does not claim it
    audit_rollups.refresh_rollups(eng)
    assert sum(r["calls"] for r in audit_repo.view_rows(eng, "audit_token_usage")) == 25


@pytest.mark.postgres
def test_a_role_that_may_not_refresh_is_told_who_may(pg_url: str) -> None:
    reader = make_engine(pg_url, connect_args={"options": "-c default_transaction_read_only=on"})
    try:
        with pytest.raises(audit_rollups.RefreshRefused, match="reasonmed db upgrade"):
            audit_rollups.refresh_rollups(reader)
    finally:
        reader.dispose()


def test_audit_command_refreshes_on_demand_and_says_as_of_when(
    fixture_engine: Engine, db_url: str, tmp_path: Any
) -> None:
    def audit(*extra: str) -> str:
        res = CliRunner().invoke(
            app, ["audit", "--view", "audit_token_usage", "--database-url", db_url, *extra]
        )
        assert res.exit_code == 0, res.output
        return res.output

    plain = audit()
    rolled = audit_rollups.has_rollups(fixture_engine)
    # The fixture came after the migration's refresh: on Postgres not counted yet, and said so.
    assert ("audit_token_usage counts the rows committed before" in plain) is rolled
    assert ("ago; 0 rows, refreshed in" in plain) is rolled
    assert ("(3 rows)" in plain) is not rolled
    refreshed = audit("--refresh")
    assert "(3 rows)" in refreshed
    assert ("refreshed audit_token_usage: 3 rows" in refreshed) is rolled
    assert ("refreshed audit_verifier_accuracy: 7 rows" in refreshed) is rolled
    assert ("`reasonmed audit --refresh` recomputes them" in refreshed) is rolled
    as_json = CliRunner().invoke(
        app,
        ["audit", "--view", "audit_token_usage", "--format", "json", "--refresh", "--database-url", db_url],
    )
    assert as_json.exit_code == 0 and as_json.output.lstrip().startswith("{")  # nothing but the JSON
    report = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r"), "--database-url", db_url])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert ("audit_verifier_accuracy counts the rows committed before" in page) is rolled


@pytest.mark.postgres
def test_a_build_run_refreshes_at_its_end(built_pg_db: Any) -> None:
    """The suite's build (60 questions over the simulator) wrote its calls after the template's migration:
    only the refresh at the build's end makes the rolled-up views count them."""
    eng = make_engine(built_pg_db.url)
    try:
        with eng.connect() as c:
            per_stage = dict(c.execute(text("SELECT role, count(*) FROM llm_calls GROUP BY role")).all())
            last_call = c.execute(text("SELECT max(created_at) FROM llm_calls")).scalar_one()
            paths = c.execute(text("SELECT count(*) FROM verdicts WHERE superseded_at IS NULL")).scalar_one()
        assert per_stage and {r["stage"]: r["calls"] for r in audit_repo.tokens_by_stage(eng)} == per_stage
        assert sum(r["paths"] for r in audit_repo.view_rows(eng, "audit_verifier_accuracy")) == paths
        assert all(s.refreshed_at > last_call for s in audit_rollups.rollup_states(eng))
    finally:
        eng.dispose()


def _night(engine: Engine, build: Any = None) -> Night:
    async def no_build(_request: NightRequest) -> BuildDone:
        raise AssertionError("this night builds nothing")

    async def no_export(_request: NightRequest, _simulated: bool) -> dict[str, Any]:
        raise AssertionError("this night exports nothing")

    def no_ingest(*_args: Any) -> Any:
        raise AssertionError("this night ingests nothing")

    def no_config() -> Any:
        raise AssertionError("this night reads no pipeline file")

    request = NightRequest(max_questions=None if build else 0, export=False)
    calls = NightCalls(ingest_file=no_ingest, build=build or no_build, export=no_export)
    return Night(
        request,
        engine=engine,
        settings=get_settings(),
        cfg=no_config,
        calls=calls,
        log=logging.getLogger("test-night"),
    )


@pytest.mark.postgres
def test_the_nightly_run_refreshes_what_the_day_wrote(pg_fixture_engine: Engine) -> None:
    """A night with no build (a budget of 0 questions) still refreshes: the day's rows (here the fixture's,
    as a rejudge or retry outside a build would write them) are counted after it."""
    eng = pg_fixture_engine
    assert audit_repo.view_rows(eng, "audit_token_usage") == []
    started = datetime.now(UTC)
    asyncio.run(_night(eng).grow(run_id=1))
    assert audit_repo.count_rows(eng, "audit_token_usage") == 3
    assert audit_repo.count_rows(eng, "audit_verifier_accuracy") == 7
    assert all(s.refreshed_at >= started for s in audit_rollups.rollup_states(eng))


@pytest.mark.postgres
def test_a_night_whose_build_refreshed_does_not_refresh_again(pg_fixture_engine: Engine) -> None:
    eng = pg_fixture_engine
    by_build: list[audit_rollups.RollupState] = []

    async def build(_request: NightRequest) -> BuildDone:  # writes a call, then refreshes as a build ends
        _add_calls(eng, [(T0 + timedelta(days=2), 5.0)], first=100)
        by_build.extend(audit_rollups.refresh_rollups(eng))
        return BuildDone(result={}, completed=True, message=None)

    asyncio.run(_night(eng, build).grow(run_id=1))
    assert audit_rollups.rollup_states(eng) == by_build and len(by_build) == 2
    assert audit_repo.count_rows(eng, "audit_token_usage") == 4  # the fixture's 3 groups and the build's day
