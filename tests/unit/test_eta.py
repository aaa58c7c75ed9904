"""Time left and projected cost, with numbers worked by hand; and "unknown" (with its reason) wherever a
number would be a guess."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

from reasonmed.cli.run import _progress_table
from reasonmed.pipeline.eta import Observed, duration, estimate, needed
from reasonmed.pipeline.progress import BuildProgress, summary


def test_a_quarter_done_in_a_minute_leaves_three_minutes_and_four_times_the_cost() -> None:
    # 30 of 120 settled in 60 s: 0.5 a second, 90 left -> 180 s. $0.90 for 30 -> $0.03 each -> $3.60.
    e = estimate(Observed(total=120, settled=30, elapsed_s=60.0, recent=30, cost_usd=0.90))
    assert e.remaining == 90
    assert e.rate_per_s == pytest.approx(0.5)
    assert e.eta_s == pytest.approx(180.0)
    assert e.projected_cost_usd == pytest.approx(3.60)
    assert e.eta_text() == "~3 min for 90 questions at 0.50/s"


def test_the_pace_is_the_recent_window_not_the_whole_run() -> None:
    # 60 of 120 in 600 s is 0.1/s overall, but 24 settled in the last 120 s: 0.2/s -> 60 left in 300 s.
    e = estimate(Observed(total=120, settled=60, elapsed_s=600.0, recent=24, window_s=120.0))
    assert e.rate_per_s == pytest.approx(0.2)
    assert e.eta_s == pytest.approx(300.0)
    assert e.projected_cost_usd is None  # no prices: no projection


def test_failed_and_set_aside_questions_settle_and_share_the_cost() -> None:
    p = BuildProgress(total=10, started=time.monotonic() - 20.0)
    for status in ("accepted", "rejected", "resolved", "failed", "set_aside"):
        p.settle(status)
    assert (p.done, p.accepted, p.rejected, p.failed, p.set_aside) == (3, 1, 1, 1, 1)
    obs = p.observed(cost_usd=1.0)
    assert (obs.settled, obs.recent, obs.total) == (5, 5, 10)
    e = estimate(obs)
    assert e.remaining == 5
    assert e.projected_cost_usd == pytest.approx(2.0)  # $1 over 5 settled, 10 in the run
    assert e.eta_s == pytest.approx(5 / (5 / obs.elapsed_s))


def test_settle_times_older_than_the_window_leave_the_pace() -> None:
    p = BuildProgress(total=100, started=time.monotonic() - 300.0, window_s=60.0)
    for _ in range(10):
        p.settle("accepted")
    now = time.monotonic()
    assert p.observed(now=now + 30).recent == 10
    late = p.observed(now=now + 61)
    assert late.recent == 0 and late.settled == 10
    e = estimate(late)
    assert e.eta_s is None and e.rate_per_s == 0.0
    assert e.eta_text() == "unknown: paused, none settled in the last 60 s"


@pytest.mark.parametrize(
    ("obs", "why"),
    [
        (Observed(total=1000, settled=4, elapsed_s=60.0, recent=4), "4 settled, 5 needed for a pace"),
        (Observed(total=120, settled=1, elapsed_s=60.0, recent=1), "1 settled, 2 needed for a pace"),
        (Observed(total=1000, settled=0, elapsed_s=60.0, recent=0), "0 settled, 5 needed for a pace"),
        (Observed(total=120, settled=30, elapsed_s=9.0, recent=30), "9 s elapsed, 10 s needed for a pace"),
        (
            Observed(total=120, settled=30, elapsed_s=600.0, recent=0),
            "paused, none settled in the last 2 min",
        ),
        (Observed(total=120, settled=30, elapsed_s=60.0, recent=30, running=False), "the run has ended"),
    ],
)
def test_unknown_rather_than_a_wild_number(obs: Observed, why: str) -> None:
    e = estimate(obs)
    assert e.eta_s is None and e.unknown_because == why
    assert e.eta_text() == f"unknown: {why}"


def test_too_few_settled_projects_no_cost() -> None:
    # One question settled while dozens are in flight: the spend so far is theirs too, so no projection.
    assert (
        estimate(Observed(total=1000, settled=1, elapsed_s=60, recent=1, cost_usd=0.5)).projected_cost_usd
        is None
    )
    assert estimate(
        Observed(total=1000, settled=5, elapsed_s=60, recent=5, cost_usd=0.5)
    ).projected_cost_usd == (pytest.approx(100.0))


def test_nothing_left_is_zero_and_the_cost_is_what_was_spent() -> None:
    e = estimate(Observed(total=6, settled=6, elapsed_s=3.0, recent=6, cost_usd=0.0123, running=False))
    assert e.eta_s == 0.0 and e.remaining == 0 and e.projected_cost_usd == 0.0123
    assert e.eta_text() == "none, every question has settled"
    empty = estimate(Observed(total=0, settled=0, elapsed_s=0.0, recent=0))
    assert empty.eta_s == 0.0 and empty.projected_cost_usd is None


def test_needed_is_five_or_one_percent_whichever_is_fewer() -> None:
    assert [needed(n) for n in (0, 10, 120, 450, 500, 370_000)] == [1, 1, 2, 5, 5, 5]


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0, 45, 180, 5999, 7500, 3 * 86400 + 4 * 3600)] == [
        "0 s",
        "45 s",
        "3 min",
        "100 min",
        "2 h 05 min",
        "3 d 4 h",
    ]


def _mid_run() -> dict[str, object]:
    p = BuildProgress(total=120, started=time.monotonic() - 60.0)
    for _ in range(30):
        p.settle("accepted")
    snap = p.snapshot()
    snap["cost_usd"], snap["projected_cost_usd"] = 0.90, 3.60
    return snap


def test_the_live_display_shows_time_left_and_projected_cost() -> None:
    console = Console(width=200, record=True)
    console.print(_progress_table(_mid_run()))
    text = console.export_text()
    assert "time left  ~3 min for 90 questions at 0.50/s" in text
    assert "cost  $0.9000 spent, ~$3.6000 projected for 120 questions" in text


def test_the_artifact_summary_shows_time_left_and_projected_cost() -> None:
    assert summary(_mid_run()) == (
        "30 of 120 questions settled; time left: ~3 min for 90 questions at 0.50/s; "
        "cost: $0.9000 spent, ~$3.6000 projected for 120 questions"
    )
