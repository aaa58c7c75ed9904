"""Live counters of a build, read by the CLI's progress display and the flow's progress artifact."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reasonmed.pipeline.eta import WINDOW_S, Observed, estimate
from reasonmed.roles import QuestionStatus


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
    waiting: int = 0  # waiting on batch results now (endpoints with mode batch); not settled
    started: float = field(default_factory=time.monotonic)
    usage: Callable[[], list[Any]] = field(default=lambda: [])
    finished: bool = False
    window_s: float = WINDOW_S
    # When each recent question settled (monotonic): the pace of the last ``window_s`` seconds.
    _settled_at: deque[float] = field(default_factory=deque, repr=False)

    def settle(self, status: str) -> None:
        """Count a question leaving this run's work: "failed", "set_aside", or a finished one's status;
        its time feeds the recent pace."""
        if status == QuestionStatus.FAILED:
            self.failed += 1
        elif status == QuestionStatus.SET_ASIDE:
            self.set_aside += 1
        else:
            self.done += 1
            if status == QuestionStatus.ACCEPTED:
                self.accepted += 1
            elif status == QuestionStatus.REJECTED:
                self.rejected += 1
        self._settled_at.append(time.monotonic())

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.set_aside

    def observed(self, cost_usd: float | None = None, now: float | None = None) -> Observed:
        now = time.monotonic() if now is None else now
        while self._settled_at and self._settled_at[0] < now - self.window_s:
            self._settled_at.popleft()
        return Observed(
            total=self.total,
            settled=self.settled,
            elapsed_s=max(now - self.started, 0.0),
            recent=len(self._settled_at),
            window_s=self.window_s,
            cost_usd=cost_usd,
            running=not self.finished,
        )

    def snapshot(self) -> dict[str, Any]:
        rows = self.usage()
        calls = sum(r.calls for r in rows)
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        priced = [r.cost_usd for r in rows if getattr(r, "cost_usd", None) is not None]
        cost = sum(priced) if priced else None
        eta = estimate(self.observed(cost, now))
        return {
            "total": self.total,
            "claimed": self.claimed,
            "in_flight": self.in_flight,
            "done": self.done,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "set_aside": self.set_aside,
            "waiting": self.waiting,
            "calls": calls,
            "calls_per_s": calls / elapsed,
            "prompt_tokens": sum(r.prompt_tokens for r in rows),
            "completion_tokens": sum(r.completion_tokens for r in rows),
            "retries": sum(r.retries for r in rows),
            "elapsed_s": elapsed,
            "cost_usd": cost,
            "projected_cost_usd": eta.projected_cost_usd,
            "eta_s": eta.eta_s,
            "eta": eta.eta_text(),
        }

    @property
    def fraction(self) -> float:
        return 0.0 if not self.total else min(1.0, self.settled / self.total)


def summary(snap: dict[str, Any]) -> str:
    """One paragraph of a snapshot for the flow's progress artifact: where the run is, time left, cost."""
    settled = snap["done"] + snap["failed"] + snap.get("set_aside", 0)
    text = f"{settled:,} of {snap['total']:,} questions settled; time left: {snap['eta']}"
    if snap.get("waiting"):
        text += f"; {snap['waiting']:,} waiting on batches"
    if snap.get("cost_usd") is not None:
        projected = snap.get("projected_cost_usd")
        text += f"; cost: ${snap['cost_usd']:,.4f} spent, " + (
            f"~${projected:,.4f} projected for {snap['total']:,} questions"
            if projected is not None
            else "projection unknown"
        )
    return text
