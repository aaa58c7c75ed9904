"""Correct answers for generation prompts, read from the project's ``questions`` table.

A generation prompt does not carry its answer, so the simulator looks the question up by its
normalised text and options. Questions ingested after start are found too: a miss triggers an
incremental reload (rows with a higher id), at most once per second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from reasonmed.sim.behaviour import answer_key

log = logging.getLogger(__name__)


class AnswerKeys:
    def __init__(self, database_url: str, *, min_refresh_interval_s: float = 1.0) -> None:
        self._url = database_url
        self._interval = min_refresh_interval_s
        self._keys: dict[bytes, str] = {}
        self._last_id = 0
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        self._engine: Any = None

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, question: str, options: Mapping[str, str]) -> str | None:
        return self._keys.get(answer_key(question, options))

    async def find(self, question: str, options: Mapping[str, str]) -> str | None:
        """The answer, reloading new rows first when it is unknown and the last reload is old enough."""
        found = self.lookup(question, options)
        if found is not None:
            return found
        async with self._lock:
            found = self.lookup(question, options)  # a concurrent miss may have just reloaded
            if found is None and time.monotonic() - self._last_refresh >= self._interval:
                await self.refresh()
                found = self.lookup(question, options)
        return found

    async def refresh(self) -> int:
        """Load rows added since the last load (in a thread: the event loop keeps serving)."""
        self._last_refresh = time.monotonic()
        try:
            added = await asyncio.to_thread(self._load_new)
        except Exception as exc:  # a database hiccup must not take the simulator down
            log.warning("answer keys: reload failed: %s", type(exc).__name__)
            return 0
        if added:
            log.info("answer keys: %d question(s) loaded (%d known)", added, len(self._keys))
        return added

    def _load_new(self) -> int:
        from sqlalchemy import select

        from reasonmed.db.engine import make_engine
        from reasonmed.db.models import Question

        if self._engine is None:
            self._engine = make_engine(self._url)
        t = Question.__table__
        stmt = (
            select(t.c.id, t.c.question, t.c.options, t.c.answer)
            .where(t.c.id > self._last_id)
            .order_by(t.c.id)
        )
        added = 0
        with self._engine.connect() as conn:
            for row in conn.execute(stmt):
                options = {str(label): str(text) for label, text in row.options}
                self._keys[answer_key(row.question, options)] = row.answer
                self._last_id = max(self._last_id, row.id)
                added += 1
        return added

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
