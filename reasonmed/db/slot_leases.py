"""Shares of a server's cap among the orchestrators that send to it (table ``slot_leases``).

Each orchestrator (a holder) keeps a row per server: the slots it may have in flight there. Rebalancing one
holder's row runs under a per-server lock (an advisory lock on Postgres; SQLite's write lock, taken by the
transaction's first statement), so the rule below sees every other holder's latest row:

- rows not renewed for ``ttl_s`` are a dead holder's, as are those of holders known to be gone: deleted,
  their slots free again;
- the cap is the smallest any live holder's pipeline file gives (holders that disagree get the safe one);
- the holder's fair share is the cap split evenly over the live holders (the first ``cap % n`` holders, by
  name, get one more);
- its target is its fair share, or less while the others still hold more than theirs (they shrink to theirs
  as their requests finish, at their next rebalance);
- its row keeps ``max(target, in_use)``: never less than what it has in flight.

A holder admits a new request only while its in-flight count is below its target, so its in-flight count
never exceeds its row, and the rows never add up to more than the cap: the cap holds across orchestrators
however they join, leave or die.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session

from reasonmed.db.engine import transaction
from reasonmed.db.models import SlotLease
from reasonmed.db.runs_repo import now


@dataclass(frozen=True, slots=True)
class Share:
    """One holder's part of a server's cap after a rebalance."""

    target: int  # requests it may start while below this
    slots: int  # what its row holds: max(target, in flight)
    fair: int  # its even share, which target reaches once the others have shrunk to theirs
    cap: int  # the cap in force (the smallest of the live holders')
    holders: int  # live holders of the server, itself included


def _lock(s: Session, server: str) -> None:
    """Serialise the rebalances of one server (SQLite: the transaction's first write does)."""
    if s.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(server.encode()).digest()[:8], "big", signed=True)
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def rebalance(
    engine: Engine,
    *,
    server: str,
    holder: str,
    cap: int,
    in_use: int,
    ttl_s: float,
    is_dead: Callable[[str], bool] = lambda _holder: False,
) -> Share:
    """Renew ``holder``'s row for ``server`` and return its share (the module docstring's rule). ``is_dead``
    names holders known to be gone (a process of this host that exited): their rows go at once, without
    waiting out ``ttl_s``, so a run restarted after a kill does not wait for its own dead share."""
    t = now()
    with transaction(engine) as s:
        _lock(s, server)
        s.execute(
            delete(SlotLease).where(
                SlotLease.server == server, SlotLease.renewed_at < t - timedelta(seconds=ttl_s)
            )
        )
        rows = s.execute(
            select(SlotLease.holder, SlotLease.cap, SlotLease.slots).where(
                SlotLease.server == server, SlotLease.holder != holder
            )
        ).all()
        dead = [r.holder for r in rows if is_dead(r.holder)]
        if dead:
            s.execute(delete(SlotLease).where(SlotLease.server == server, SlotLease.holder.in_(dead)))
        others = [r for r in rows if r.holder not in dead]
        live_cap = min([cap, *(o.cap for o in others)])
        names = sorted([holder, *(o.holder for o in others)])
        n, rank = len(names), names.index(holder)
        fair = live_cap // n + (1 if rank < live_cap % n else 0)
        target = max(0, min(fair, live_cap - sum(o.slots for o in others)))
        slots = max(target, in_use)
        row = s.get(SlotLease, (server, holder))
        if row is None:
            s.add(SlotLease(server=server, holder=holder, cap=cap, slots=slots, in_use=in_use, renewed_at=t))
        else:
            row.cap, row.slots, row.in_use, row.renewed_at = cap, slots, in_use, t
    return Share(target=target, slots=slots, fair=fair, cap=live_cap, holders=n)


def release(engine: Engine, *, holder: str) -> int:
    """Give back every share ``holder`` holds (its run ended); the rows deleted."""
    with transaction(engine) as s:
        return s.execute(delete(SlotLease).where(SlotLease.holder == holder)).rowcount or 0  # type: ignore[attr-defined]


def leases(engine: Engine, server: str | None = None) -> list[SlotLease]:
    """The rows, by server and holder (what ``SELECT * FROM slot_leases`` shows; the tests read it)."""
    q = select(SlotLease).order_by(SlotLease.server, SlotLease.holder)
    if server is not None:
        q = q.where(SlotLease.server == server)
    with Session(engine, expire_on_commit=False) as s:
        return list(s.scalars(q))
