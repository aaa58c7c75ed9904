"""The simulator's emulation of what a real engine reports: its prefix cache, duplicate bodies, length
profiles and engine utilisation. Expected values are worked by hand (tokens: words x 1.3, rounded up)."""

from __future__ import annotations

import pytest

from reasonmed.sim.lengths import REALISTIC, LengthDraw, profile_named
from reasonmed.sim.metrics import SimMetrics, parse_metrics
from reasonmed.sim.prefix_cache import PrefixCache, question_key


def test_a_question_seen_before_hits_its_prefix() -> None:
    cache = PrefixCache(capacity=2)
    assert cache.serve("be brief", "which artery", 50) == 0  # first time: a miss
    assert cache.serve("be brief", "which artery", 50) == 6  # system 2 words -> 3, question 2 words -> 3
    assert cache.serve("be brief", "which artery", 4) == 4  # never more than the prompt
    assert cache.serve("", "", 10) == 0  # no question in the prompt: nothing shared
    assert cache.questions() == {question_key("which artery"): 3}
    cache.serve("x", "second", 9)
    cache.serve("x", "third", 9)  # capacity 2: the least recent question ("which artery") is forgotten
    assert cache.serve("be brief", "which artery", 50) == 0
    assert question_key("which  artery") == question_key("which artery")  # whitespace does not matter


def test_duplicate_bodies_are_counted_across_resets() -> None:
    m = SimMetrics()
    m.received(b'{"seed": 1}')
    m.received(b'{"seed": 2}')
    m.reset()
    m.received(b'{"seed": 1}')
    assert m.duplicate_requests == 1
    assert parse_metrics(m.render())["duplicate_requests_total"] == 1


def test_engine_utilisation_is_the_time_average_of_slots_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("reasonmed.sim.metrics.time.monotonic", lambda: clock[0])
    m = SimMetrics()
    m.engine_slot(True)
    m.engine_slot(True, waited_s=0.5)
    clock[0] += 2.0
    m.engine_slot(False)
    clock[0] += 2.0
    assert m.time_avg_running() == 1.5  # two slots for 2 s, one for 2 s
    assert (m.engine_queued, m.engine_queue_s) == (1, 0.5)
    m.reset()
    clock[0] += 1.0
    assert m.time_avg_running() == 1.0  # since the reset: one slot throughout


def test_length_profiles_draw_within_each_role_s_range() -> None:
    draw = LengthDraw(profile_named("realistic"), seed=3)
    for role, (lo, hi) in REALISTIC.items():
        got = [draw.tokens(role, 7) for _ in range(200)]
        assert lo <= min(got) and max(got) <= hi and len(set(got)) > 50
    assert draw.tokens("unknown-role", 7) == 7
    with pytest.raises(ValueError, match="unknown length profile 'huge'"):
        profile_named("huge")
