"""Shares of a cap among orchestrators (db/slot_leases.py), on Postgres (advisory lock) and SQLite.

The expected shares are worked by hand from the rule in the module's docstring: fair share = cap // n, the
first ``cap % n`` holders (by name) one more; target = min(fair, cap - what the others hold); row =
max(target, in flight).
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import update

from reasonmed.db.engine import make_engine, transaction
from reasonmed.db.models import SlotLease
from reasonmed.db.runs_repo import now
from reasonmed.db.slot_leases import leases, rebalance, release

S = "gen http://gpu-1:8000/v1"


def test_shares_by_hand(db_url: str) -> None:
    engine = make_engine(db_url)

    def turn(holder: str, in_use: int, cap: int = 10) -> tuple[int, int]:
        share = rebalance(engine, server=S, holder=holder, cap=cap, in_use=in_use, ttl_s=60)
        return share.target, share.slots

    assert turn("a", 0) == (10, 10)  # alone: the whole cap
    assert turn("b", 0) == (0, 0)  # fair 5, but a holds all 10
    assert turn("a", 10) == (5, 10)  # a's target drops to 5; its row keeps the 10 in flight
    assert turn("b", 0) == (0, 0)  # still nothing free
    assert turn("a", 3) == (5, 5)  # a's requests finished: its row shrinks to its target
    assert turn("b", 0) == (5, 5)  # b takes the 5 freed
    assert turn("c", 0) == (0, 0)  # three holders: fair a 4, b 3, c 3; nothing free yet
    assert turn("a", 3) == (4, 4)
    assert turn("b", 5) == (3, 5)
    assert turn("c", 0) == (1, 1)  # 10 - 4 - 5
    assert turn("b", 2) == (3, 3)
    assert turn("c", 1) == (3, 3)  # 10 - 4 - 3
    assert sum(r.slots for r in leases(engine, S)) == 10
    assert turn("c", 1, cap=6) == (0, 1)  # c's file says 6: the cap in force is 6, a and b hold 7
    assert turn("a", 0) == (2, 2)  # 6 // 3 = 2 each
    assert turn("b", 0) == (2, 2)
    assert turn("c", 1, cap=6) == (2, 2)
    assert release(engine, holder="c") == 1
    assert turn("a", 0) == (5, 5)  # back to two holders at cap 10: fair 5, b holds 2
    engine.dispose()


def test_a_dead_holder_s_share_comes_back_after_its_time_to_live(db_url: str) -> None:
    engine = make_engine(db_url)
    rebalance(engine, server=S, holder="dead", cap=8, in_use=8, ttl_s=60)
    assert rebalance(engine, server=S, holder="live", cap=8, in_use=0, ttl_s=60).target == 0
    with transaction(engine) as s:
        s.execute(
            update(SlotLease)
            .where(SlotLease.holder == "dead")
            .values(renewed_at=now() - timedelta(seconds=61))
        )
    share = rebalance(engine, server=S, holder="live", cap=8, in_use=0, ttl_s=60)
    assert (share.target, share.holders) == (8, 1)
    assert [r.holder for r in leases(engine, S)] == ["live"]
    engine.dispose()


def test_the_rows_never_add_up_to_more_than_the_cap(db_url: str) -> None:
    """Holders join, leave and run requests in a random order; each admits only below its target, as the
    slots do. After every step the granted rows, and so the requests in flight, stay within the cap."""
    engine = make_engine(db_url)
    rng = random.Random(7)
    cap = 12
    in_use: dict[str, int] = {}
    for _ in range(400):
        holder = rng.choice("abcde")
        if holder in in_use and rng.random() < 0.05:
            release(engine, holder=holder)
            del in_use[holder]
            continue
        used = in_use.get(holder, 0)
        if rng.random() < 0.5:
            used = rng.randint(0, used)  # some requests finished
        share = rebalance(engine, server=S, holder=holder, cap=cap, in_use=used, ttl_s=600)
        if used < share.target:
            used = rng.randint(used, share.target)  # starts requests up to its target, never beyond
        in_use[holder] = used
        rows = {r.holder: r.slots for r in leases(engine, S)}
        assert sum(rows.values()) <= cap
        assert all(in_use[h] <= rows[h] for h in in_use)  # a holder's row covers what it has in flight
        assert sum(in_use.values()) <= cap
    engine.dispose()


def test_a_holder_known_to_be_gone_gives_its_share_back_at_once(db_url: str) -> None:
    engine = make_engine(db_url)
    rebalance(engine, server=S, holder="gone", cap=8, in_use=8, ttl_s=60)
    other = "gen http://gpu-2:8000/v1"
    rebalance(engine, server=other, holder="gone", cap=8, in_use=8, ttl_s=60)
    share = rebalance(
        engine, server=S, holder="live", cap=8, in_use=0, ttl_s=60, is_dead=lambda h: h == "gone"
    )
    assert (share.target, share.holders) == (8, 1)
    # only this server's row goes now; the other server's goes when a holder of that server rebalances
    assert [(r.server, r.holder) for r in leases(engine)] == [(S, "live"), (other, "gone")]
    engine.dispose()
