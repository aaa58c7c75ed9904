"""The batched writer: many questions' writes per transaction, each caller told its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reasonmed.db.write_behind import WriteBehind


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}", connect_args={"check_same_thread": False})
    with engine.begin() as c:
        c.execute(text("create table t (k integer primary key, v text not null)"))
    return engine


def _insert(k: int, v: str | None = "x"):  # type: ignore[no-untyped-def]
    def write(s: Session) -> int:
        s.execute(text("insert into t (k, v) values (:k, :v)"), {"k": k, "v": v})
        return k * 10

    return write


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as c:
        return [k for (k,) in c.execute(text("select k from t order by k"))]


def test_concurrent_writes_share_transactions_and_each_caller_gets_its_result(sqlite_engine: Engine) -> None:
    async def go() -> tuple[list[int], int]:
        async with WriteBehind(sqlite_engine, max_batch=16) as w:
            results = await asyncio.gather(*(w.write(k, _insert(k)) for k in range(100)))
        return results, w.stats.flushes

    results, flushes = asyncio.run(go())
    assert results == [k * 10 for k in range(100)]
    assert _rows(sqlite_engine) == list(range(100))
    assert 100 // 16 <= flushes < 100  # batched, and never more than max_batch per transaction


def test_a_failing_write_fails_only_its_caller(sqlite_engine: Engine) -> None:
    async def go() -> list[object]:
        async with WriteBehind(sqlite_engine) as w:
            return await asyncio.gather(
                *(w.write(k, _insert(k, None if k == 7 else "x")) for k in range(20)), return_exceptions=True
            )

    results = asyncio.run(go())
    assert isinstance(results[7], IntegrityError)  # NOT NULL
    assert [r for i, r in enumerate(results) if i != 7] == [k * 10 for k in range(20) if k != 7]
    assert _rows(sqlite_engine) == [k for k in range(20) if k != 7]


def test_close_commits_every_write_handed_in(sqlite_engine: Engine) -> None:
    async def go() -> None:
        w = WriteBehind(sqlite_engine, max_batch=4)
        pending = [asyncio.ensure_future(w.write(k, _insert(k))) for k in range(30)]
        await asyncio.sleep(0)  # the writes are queued, most not yet flushed
        await w.aclose()
        assert all(p.done() and p.result() == k * 10 for k, p in enumerate(pending))

    asyncio.run(go())
    assert _rows(sqlite_engine) == list(range(30))


def test_a_batch_runs_in_ascending_question_order(sqlite_engine: Engine) -> None:
    seen: list[int] = []

    def record(k: int):  # type: ignore[no-untyped-def]
        def write(s: Session) -> None:
            seen.append(k)

        return write

    async def go() -> None:
        async with WriteBehind(sqlite_engine, max_batch=100) as w:
            await asyncio.gather(*(w.write(k, record(k)) for k in [5, 3, 9, 1, 7]))

    asyncio.run(go())
    assert seen == [1, 3, 5, 7, 9]  # queued together, written in one batch in question order


def test_max_batch_must_be_positive(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        WriteBehind(sqlite_engine, max_batch=0)
