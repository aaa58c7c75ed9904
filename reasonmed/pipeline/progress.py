"""Live counters of a build, read by the CLI's progress display and the flow's progress artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BuildProgress:
    total: int = 0  # questions this run intends to process (known once claimed)
    claimed: int = 0
    in_flight: int = 0
    done: int = 0  # finished this run: accepted or rejected
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # failed in this run; a later run tries again
    set_aside: int = 0  # failed for good (or out of attempts): skipped until `reasonmed retry`
    started: float = field(default_factory=time.monotonic)
    usage: Callable[[], list[Any]] = field(default=lambda: [])
    finished: bool = False

    def snapshot(self) -> dict[str, Any]:
        rows = self.usage()
        calls = sum(r.calls for r in rows)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        priced = [r.cost_usd for r in rows if getattr(r, "cost_usd", None) is not None]
        cost = sum(priced) if priced else None
        # Spent so far, scaled to the questions this run intends to process (once some are done).
        projected = cost / self.done * self.total if cost is not None and self.done and self.total else None
        return {
            "total": self.total,
            "claimed": self.claimed,
            "in_flight": self.in_flight,
            "done": self.done,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "set_aside": self.set_aside,
            "calls": calls,
            "calls_per_s": calls / elapsed,
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "retries": sum(r.retries for r in rows),
            "elapsed_s": elapsed,
            "cost_usd": cost,
            "projected_cost_usd": projected,
        }

    @property
    def fraction(self) -> float:
        return 0.0 if not self.total else min(1.0, (self.done + self.failed + self.set_aside) / self.total)
