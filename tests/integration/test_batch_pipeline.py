"""Endpoints with ``mode: batch`` end to end: the build flow, the simulator's Batch API over HTTP, Postgres.

The hosted roles of the paper's profile (refiner, regenerator, summariser) go through batches; the open
models stay interactive. Expected values come from outside the batch code: the same questions built with
every endpoint interactive (the simulator answers a request's body the same either way), the simulator's
own request counts, and the prices in the pipeline file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from reasonmed.config import temporary_settings
from reasonmed.db import export_repo
from reasonmed.db.engine import get_engine
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import ingest_pubmedqa, run_build, use_database, write_sim_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

HOSTED = ("sim-refiner", "sim-regenerator", "sim-summarizer")
PRICES = {"price_input_per_mtok": 2.5, "price_output_per_mtok": 10.0}
QUESTIONS = 50
SIM = {"base_latency_ms": 1, "per_token_ms": 0, "default_accuracy": 0.4, "refine_accuracy": 0.55}


def _config(path: Path, sim_url: str, *, batch: bool) -> Path:
    write_sim_config(path, sim_url)
    data = yaml.safe_load(path.read_text())
    for name in HOSTED:
        data["endpoints"][name].update(PRICES)
        if batch:
            data["endpoints"][name]["mode"] = "batch"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _accepted(url: str) -> set[tuple[Any, ...]]:
    rows = [r for chunk in export_repo.stream_accepted_rows(get_engine(url), include_simulated=True) for r in chunk]
    cols = export_repo.ROW_COLUMNS
    keep = ("source_id", "rank", "model", "temperature", "origin", "cot", "summary")
    return {tuple(dict(zip(cols, r, strict=True))[k] for k in keep) for r in rows}


def _scalar(url: str, sql: str) -> Any:
    with get_engine(url).connect() as c:
        return c.execute(text(sql)).scalar_one()


def _metric(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[str]:
    old = os.environ.get("REASONMED_DATABASE_URL")
    use_database(pg_url)
    ingest_pubmedqa(pg_url)
    yield pg_url
    if old is None:
        os.environ.pop("REASONMED_DATABASE_URL", None)
    else:
        os.environ["REASONMED_DATABASE_URL"] = old


@pytest.fixture
def second_pg(pg_template: str) -> Iterator[str]:
    import uuid

    from tests.conftest import _create_db, _db_url, _drop_db

    name = f"reasonmed_test_batch_{uuid.uuid4().hex[:8]}"
    _create_db(name, template=pg_template)
    url = _db_url(name)
    ingest_pubmedqa(url)
    yield url
    get_engine(url).dispose()
    _drop_db(name)


def test_batch_mode_accepts_what_interactive_mode_accepts_at_half_the_price(
    fresh_pg: str, second_pg: str, tmp_path: Path
) -> None:
    # The reference: the same 50 questions with every endpoint interactive.
    use_database(second_pg)
    with SimServer(questions_db=second_pg, **SIM) as sim:
        ref = run_build(limit=QUESTIONS, config=str(_config(tmp_path / "i.yaml", sim.base_url, batch=False)))
        interactive = sim.metrics()
    assert ref["outcome"]["status"] == "done"
    expected = _accepted(second_pg)
    assert expected, "the reference run accepted nothing: the comparison would prove nothing"

    use_database(fresh_pg)
    with SimServer(questions_db=fresh_pg, **SIM) as sim:
        cfg = str(_config(tmp_path / "b.yaml", sim.base_url, batch=True))
        first = run_build(limit=QUESTIONS, config=cfg, batch_wait_s=0)
        # Run 1 submits and ends: its questions wait, nothing failed, nothing was set aside.
        out = first["outcome"]
        assert out["status"] == "done" and out["failed"] == 0 and out["set_aside"] == 0
        assert out["waiting"] > 0 and out["open_batches"] > 0
        assert _scalar(fresh_pg, "select count(*) from llm_calls where error_kind = 'batch_pending'") == 0
        with temporary_settings(batch_poll_s=0.2):
            second = run_build(limit=QUESTIONS, config=cfg, batch_wait_s=120)
        batch = sim.metrics()
    out = second["outcome"]
    assert out["status"] == "done" and out["waiting"] == 0 and out["open_batches"] == 0, out
    assert _accepted(fresh_pg) == expected

    # Request counts per mode at the simulator: the hosted roles' requests became batch lines, one each.
    for model in ("sim/refiner-gpt-4o-class", "sim/summarizer-gpt-4o-mini-class"):
        sent = _metric(interactive, f'reasonmed_sim_requests_by_model_total{{model="{model}"}}')
        assert sent > 0
        assert _metric(batch, f'reasonmed_sim_requests_by_model_total{{model="{model}"}}') == 0
        assert _metric(batch, f'reasonmed_sim_batch_lines_by_model_total{{model="{model}"}}') == sent
    lines = _metric(batch, "reasonmed_sim_batch_lines_total")
    assert lines == _scalar(fresh_pg, "select count(*) from batch_requests")
    assert lines == _scalar(fresh_pg, "select count(distinct custom_id) from batch_requests")
    print(f"\nsimulator requests: interactive mode {_metric(interactive, 'reasonmed_sim_requests_total'):.0f}; "
          f"batch mode {_metric(batch, 'reasonmed_sim_requests_total'):.0f} interactive + {lines:.0f} batch lines")

    # Cost in the audit: the hosted roles' calls at half the price; the batches' own cost agrees.
    def hosted_cost(url: str) -> float:
        return float(
            _scalar(
                url,
                "select sum(cost_usd) from audit_token_usage where stage in ('refiner', 'regenerator', 'summarizer')",
            )
        )

    assert hosted_cost(fresh_pg) == pytest.approx(hosted_cost(second_pg) / 2, rel=1e-9)
    assert float(_scalar(fresh_pg, "select sum(cost_usd) from audit_batches")) == pytest.approx(
        hosted_cost(fresh_pg), rel=1e-9
    )
    assert _scalar(fresh_pg, "select count(*) from llm_calls where batch_id is not null") > 0
