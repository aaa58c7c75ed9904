"""Renewing claims never deadlocks with a batch of stage writes.

A batch of stage writes (``db/write_behind.py``) locks question rows in ascending id order, through the
outcome trigger, and holds them until the batch commits. The claim heartbeat renews every question the
worker holds in one statement. Here the heap order of the rows is not their id order (an update moved
the first row to the end of the table) and the renewal's session is made to scan the table, so a plain
UPDATE would lock the third row, then wait for the first, which the batch holds while it waits for the
third: a deadlock, which Postgres ends by aborting one of them. The renewal locks rows in id order first.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from reasonmed.db import claims_repo
from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from tests.integration.test_pipeline_resilience import _training_subset


def test_renewal_waits_for_a_batch_instead_of_deadlocking(pg_url: str, tmp_path: Path) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _training_subset(tmp_path / "three.json", 3), "pubmedqa")
    ids = claims_repo.claim_questions(engine, worker="w", limit=3, lease_s=600)
    assert len(ids) == 3
    first, _, last = sorted(ids)
    with engine.begin() as c:  # a new version of the first row, at the end of the heap
        c.execute(
            text("update questions set claim_expires_at = claim_expires_at where id = :i"), {"i": first}
        )
    scanning = create_engine(
        pg_url, connect_args={"options": "-c enable_indexscan=off -c enable_bitmapscan=off"}
    )
    holding = threading.Event()
    errors: list[BaseException] = []

    def batch() -> (
        None
    ):  # locks the first row, then (later) the last, as a batch of two questions' writes would
        try:
            with engine.begin() as c:
                c.execute(
                    text("update questions set claim_expires_at = claim_expires_at where id = :i"),
                    {"i": first},
                )
                holding.set()
                time.sleep(2.0)  # longer than deadlock_timeout (1 s): a cycle would be found and broken
                c.execute(
                    text("update questions set claim_expires_at = claim_expires_at where id = :i"),
                    {"i": last},
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    writer = threading.Thread(target=batch)
    writer.start()
    assert holding.wait(30)
    try:
        claims_repo.renew_claims(scanning, worker="w", question_ids=ids, lease_s=900)
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
    writer.join(30)
    assert not errors, errors
    with engine.connect() as c:
        left = c.execute(
            text("select min(claim_expires_at - now()) from questions where id = any(:ids)"), {"ids": ids}
        ).scalar_one()
    assert left.total_seconds() > 800  # renewed, all three
    scanning.dispose()
