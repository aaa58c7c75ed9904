"""Three orchestrators against one simulated server: together they never have more requests in flight to an
endpoint than its ``max_in_flight``, and they still share the work (llm/shared_caps.py).

The simulator counts what it receives, per requested model (one endpoint each): its peak is the evidence,
not the orchestrators' own account.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from reasonmed.db import claims_repo, slot_leases
from reasonmed.sim.launcher import SimServer
from tests.fixtures_ops import PrefectServer, stop_process
from tests.fixtures_pipeline import write_sim_config
from tests.integration.test_workers import _claims, _finish, _start_worker, pending

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["pending"]  # the fixture, used by name

CAP = 3  # every endpoint's max_in_flight, shared by the three orchestrators


def test_three_orchestrators_stay_within_each_endpoint_s_cap(
    prefect_server: PrefectServer,
    pending: tuple[str, Engine, list[int]],
    tmp_path: Path,
) -> None:
    pg_url, engine, ids = pending
    # 60 ms a request: each orchestrator alone would keep all CAP slots of an endpoint busy
    with SimServer(questions_db=pg_url, base_latency_ms=60, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url, max_in_flight=CAP)
        procs = []
        try:
            for name in ("a", "b", "c"):
                procs.append((name, *_start_worker(prefect_server, tmp_path, name, pg_url, cfg, "600")))
            results = [_finish(proc, tmp_path, name) for name, proc, _claims_file in procs]
        finally:
            for _name, proc, _claims_file in procs:
                stop_process(proc)
        metrics = sim.metrics()

    peaks = {k: v for k, v in metrics.items() if k.startswith("in_flight_peak_by_model")}
    assert len(peaks) >= 4  # the three generators' endpoints and the verifier's at least
    # the three together reached each busy endpoint's cap, and never went past it
    assert max(peaks.values()) == CAP, peaks
    # not for want of work: the server as a whole had more than one endpoint's cap in flight
    assert metrics["in_flight_peak"] > CAP
    claimed = [_claims(claims_file) for _name, _proc, claims_file in procs]
    assert sum(1 for c in claimed if c) >= 2, "at least two orchestrators should have taken part"
    assert sorted(q for c in claimed for q in c) == ids
    assert sum(r["done"] for r in results) == len(ids) and all(r["failed"] == 0 for r in results)
    assert claims_repo.count_pending(engine) == 0
    assert slot_leases.leases(engine) == []  # each gave its shares back when its run ended
