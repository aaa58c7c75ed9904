"""Stage writes of many questions committed together: one transaction per flush instead of one per write.

Each write is a function of a session (``stage_writes.write_*``) handed in with its question id; the
caller awaits it and goes on only once its transaction has committed, exactly as with a transaction of
its own. So the guarantees are those of one transaction per write: nothing a stage has seen committed
is lost when the process dies, a write not yet flushed belongs to a stage that has not finished (a
resumed run redoes that stage, and the unique keys keep a replay from writing a second copy), and no
write is half there.

Batching is natural (group commit): the flusher takes whatever is queued, up to ``max_batch``, commits
it in one transaction in a worker thread, and meanwhile the next batch gathers; under light load a
write waits for nobody. Writes in a batch run in ascending question id, the order in which the claim
heartbeat (``renew_claims``) locks question rows, so the two do not deadlock through the outcome
trigger. If a batch fails as a whole (one bad write, a deadlock, a lost connection), each of its writes
is retried in a transaction of its own, so a write that fails for good fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reasonmed.db.engine import transaction

T = TypeVar("T")


def commit_one(engine: Engine, write: Callable[[Session], T]) -> T:
    """``write`` in a transaction of its own (a write without a batch, and a failed batch's retries)."""
    with transaction(engine) as s:
        return write(s)


@dataclass
class _Pending:
    question_id: int
    write: Callable[[Session], Any]
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class FlushStats:
    """What the writer did, for the bench and the run's log."""

    writes: int = 0
    flushes: int = 0
    split: int = 0  # batches that failed as a whole and were retried one write at a time


class WriteBehind:
    """Group commit of stage writes: started by the first write, drained by ``aclose`` (or ``async with``)."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine, self.max_batch = engine, max_batch
        self.stats = FlushStats()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WriteBehind:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Every write handed in before this is committed (or failed to its caller) before it returns."""
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return
        joined = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({joined, flusher}, return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher

    async def write(self, question_id: int, write: Callable[[Session], T]) -> T:
        """``write(session)`` committed, in a batch with other questions' writes; its result."""
        if self._flusher is None or self._flusher.done():  # started by the first write, on its event loop
            self._flusher = asyncio.create_task(self._run(), name="write-behind")
        pending = _Pending(question_id, write)
        self._queue.put_nowait(pending)
        result: T = await asyncio.shield(pending.done)
        return result

    async def _run(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                batch.sort(key=lambda p: p.question_id)
                try:
                    outcomes = await asyncio.to_thread(self._commit, batch)
                except BaseException:
                    self._fail(batch)
                    raise
                for p, (ok, value) in zip(batch, outcomes, strict=True):
                    if not p.done.done():
                        p.done.set_result(value) if ok else p.done.set_exception(value)
                    self._queue.task_done()
        finally:  # stopping (the loop is closing): nobody waits for ever on a write that was never sent
            self._fail([self._queue.get_nowait() for _ in range(self._queue.qsize())])

    def _fail(self, batch: list[_Pending]) -> None:
        for p in batch:
            if not p.done.done():
                p.done.set_exception(RuntimeError("the database writer stopped before this write committed"))
            self._queue.task_done()

    def _commit(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """One transaction for the batch; if it fails, one per write (each caller gets its own outcome)."""
        self.stats.flushes += 1
        self.stats.writes += len(batch)
        try:
            return commit_one(self.engine, lambda s: [(True, p.write(s)) for p in batch])
        except Exception as exc:
            if len(batch) == 1:
                return [(False, exc)]  # it had a transaction of its own: its caller's retry decides
            self.stats.split += 1
        outcomes: list[tuple[bool, Any]] = []
        for p in batch:
            try:
                outcomes.append((True, commit_one(self.engine, p.write)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes
