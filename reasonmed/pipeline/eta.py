"""Time left and projected cost of a build, from the rates this run has shown so far.

Pure arithmetic, shared by the CLI's live display and the flow's progress artifact so both say the same.
A question that fails or is set aside has left this run's work as surely as one accepted or rejected (this
run never claims it again), so all of them count as *settled*: they set the pace and share the cost. An
estimate drawn from a handful of questions is noise; it is reported as unknown, with the reason, instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_SETTLED = 5  # questions, or 1% of the run if that is fewer: enough for a first rate
MIN_FRACTION = 0.01
MIN_ELAPSED_S = 10.0  # the first questions finish together after one round trip: too soon is too fast
WINDOW_S = 120.0  # the pace is read over this recent window, so a change of pace shows within minutes


@dataclass(frozen=True, slots=True)
class Observed:
    """What a run has seen so far. ``recent``: questions settled within the last ``window_s`` seconds."""

    total: int  # questions this run intends to process
    settled: int  # accepted, rejected, failed or set aside
    elapsed_s: float
    recent: int
    window_s: float = WINDOW_S
    cost_usd: float | None = None  # None: no prices configured
    running: bool = True


@dataclass(frozen=True, slots=True)
class Estimate:
    """``eta_s`` None means unknown, and ``unknown_because`` says why."""

    remaining: int
    rate_per_s: float | None
    eta_s: float | None
    unknown_because: str | None
    projected_cost_usd: float | None

    def eta_text(self) -> str:
        if self.eta_s == 0 and self.remaining == 0:
            return "none, every question has settled"
        if self.eta_s is None:
            return f"unknown: {self.unknown_because}"
        return f"~{duration(self.eta_s)} for {self.remaining:,} questions at {self.rate_per_s:.2f}/s"


def needed(total: int) -> int:
    """Settled questions an estimate needs: five, or 1% of the run when that is fewer (at least one)."""
    return max(1, min(MIN_SETTLED, math.ceil(total * MIN_FRACTION)))


def estimate(obs: Observed) -> Estimate:
    remaining = max(0, obs.total - obs.settled)
    enough = obs.settled >= needed(obs.total)
    # Spent so far per settled question, over the whole run: in-flight work is in the spend already.
    projected = (
        obs.cost_usd / obs.settled * obs.total
        if obs.cost_usd is not None and enough and obs.settled
        else None
    )
    if obs.cost_usd is not None and remaining == 0:
        projected = obs.cost_usd

    def unknown(why: str, rate: float | None = None) -> Estimate:
        return Estimate(remaining, rate, None, why, projected)

    if remaining == 0:
        return Estimate(0, None, 0.0, None, projected)
    if not obs.running:
        return unknown("the run has ended")
    if not enough:
        return unknown(f"{obs.settled:,} settled, {needed(obs.total):,} needed for a pace")
    if obs.elapsed_s < MIN_ELAPSED_S:
        return unknown(f"{obs.elapsed_s:.0f} s elapsed, {MIN_ELAPSED_S:.0f} s needed for a pace")
    span = min(obs.window_s, obs.elapsed_s)
    rate = obs.recent / span
    if rate <= 0:
        return unknown(f"paused, none settled in the last {duration(span)}", 0.0)
    return Estimate(remaining, rate, remaining / rate, None, projected)


def duration(seconds: float) -> str:
    """A reading length of time: 45 s, 3 min, 2 h 05 min, 3 d 4 h."""
    s = round(seconds)
    if s < 100:
        return f"{s} s"
    if s < 100 * 60:
        return f"{round(s / 60)} min"
    h, m = divmod(round(s / 60), 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"
