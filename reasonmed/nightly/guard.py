"""One nightly run at a time, whoever starts it: a lock row in the database, kept alive by a thread.

Prefect's deployment concurrency limit (1, CANCEL_NEW) stops a second *scheduled or deployment* run,
but not someone running the flow by hand, from another server, or from a test; the database is the one
thing every run shares, so the guard lives there (see ``reasonmed.db.nightly_repo``). The heartbeat runs
in its own thread so a long blocking step (an ingest, an export) cannot let the lease lapse, and a run
that dies simply stops renewing: its lock expires after the lease and the next night proceeds.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from reasonmed.db import nightly_repo
from reasonmed.db.nightly_repo import Holder, KeySession, LockKeyHeld

log = logging.getLogger(__name__)


class RunLock:
    """A held lock: ``run_id`` is its ``pipeline_runs`` row; ``stop()`` ends the heartbeat."""

    def __init__(self, engine: Engine, run_id: int, ttl_s: float) -> None:
        self.engine, self.run_id, self.ttl_s = engine, run_id, ttl_s
        self.lost = (
            False  # set when a renewal found the row taken away (e.g. the process was frozen too long)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"run-lock-{run_id}", daemon=True)

    def start(self) -> RunLock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not nightly_repo.renew_run_lock(self.engine, self.run_id):
                    self.lost = True
                    log.error("run lock %s was taken over: another run may now be active", self.run_id)
                    return
            except Exception as exc:  # a database blip: try again at the next beat, well inside the lease
                log.warning("run lock %s: heartbeat failed (%s), retrying", self.run_id, exc)


def acquire(
    engine: Engine,
    *,
    kind: str,
    ttl_s: float,
    wait_s: float,
    parameters: dict[str, Any],
    prefect_flow_run_id: str | None,
) -> RunLock | Holder:
    """The started lock, or the holder of the live one; raises ``nightly_repo.LockKeyHeld`` when the key
    that serialises starts stays held for ``wait_s`` (see :func:`key_held_message`)."""
    run_id, holder = nightly_repo.acquire_run_lock(
        engine,
        kind=kind,
        ttl_s=ttl_s,
        wait_s=wait_s,
        parameters=parameters,
        prefect_flow_run_id=prefect_flow_run_id,
    )
    if run_id is None:
        assert holder is not None
        return holder
    return RunLock(engine, run_id, ttl_s).start()


def refusal_message(kind: str, holder: Holder, ttl_s: float) -> str:
    """What the refused run says: who holds the lock, and when it would expire if that run has died."""
    beat = holder.heartbeat_at or holder.started_at
    if beat.tzinfo is None:  # SQLite returns naive UTC
        beat = beat.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - beat).total_seconds()
    where = f" (Prefect flow run {holder.prefect_flow_run_id})" if holder.prefect_flow_run_id else ""
    return (
        f"another {kind} run is already running: pipeline run {holder.run_id} on {holder.host or 'an unknown host'}"
        f"{where}, last heartbeat {age:.0f}s ago. This run exits without doing anything. If that run has died, "
        f"its lock expires {max(0.0, ttl_s - age):.0f}s from now (lease {ttl_s:g}s, REASONMED_CLAIM_LEASE_S)."
    )


def key_held_message(kind: str, busy: LockKeyHeld) -> str:
    """What a run that gave up waiting for the advisory key says: which sessions hold it, and the fix.

    Names and application names are any session's own text: quoted, so they read as data.
    """
    head = (
        f"{kind} did not start: the database lock that serialises run starts (advisory key {busy.key}) "
        f"was held for more than {busy.waited_s:g}s (REASONMED_RUN_LOCK_WAIT_S)"
    )
    if not busy.sessions:
        return f"{head} by a session that has released it since. Nothing was done; run again."
    who = "; ".join(_session(s) for s in busy.sessions)
    end = " ".join(f"SELECT pg_terminate_backend({s.pid});" for s in busy.sessions)
    return (
        f"{head} by {who}. Nothing was done. A run holds that key for milliseconds: if that is not a run "
        f"starting, end it ({end}) and run again."
    )


def _session(s: KeySession) -> str:
    def at(t: datetime | None) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "an unknown time"

    if s.state is None and s.connected_at is None:
        since = "its state and times not visible to this role (grant it pg_read_all_stats)"
    else:
        since = f"{s.state or 'in an unknown state'} since {at(s.state_since)}, connected since {at(s.connected_at)}"
    return (
        f"session pid {s.pid} (user {s.user!r}, application {s.application_name!r}, "
        f"from {s.client or ('a local socket' if s.state else 'an address not visible')}), {since}"
    )
