"""Fixtures that run the real pipeline (Prefect flow -> simulator over HTTP -> Postgres/SQLite)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reasonmed.config import get_settings
from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file, load_id_list
from reasonmed.sim.launcher import SimServer

REPO = Path(__file__).resolve().parent.parent
PUBMEDQA_FILE = REPO / "data" / "pubmedqa" / "ori_pqal.json"
PUBMEDQA_TEST_IDS = REPO / "data" / "pubmedqa" / "test_ground_truth.json"


def write_sim_config(
    path: Path, sim_url: str, *, timeout_s: float = 5.0, max_in_flight: int = 32, **overrides: Any
) -> Path:
    """The default (simulator) pipeline with test-sized timeouts and backoffs, pointed at ``sim_url``."""
    data = yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())
    for ep in data["endpoints"].values():
        ep.update(
            base_url=sim_url,
            timeout_s=timeout_s,
            max_in_flight=max_in_flight,
            backoff_base_s=0.05,
            backoff_max_s=0.5,
            max_retries=8,
            connect_timeout_s=2.0,
        )
    for key, value in overrides.items():
        data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def use_database(url: str) -> None:
    os.environ["REASONMED_DATABASE_URL"] = url
    assert get_settings().database_url == url


def run_build(**params: Any) -> dict[str, Any]:
    from reasonmed.flows.build import build_dataset

    return asyncio.run(build_dataset(**params))


def ingest_pubmedqa(url: str) -> None:
    ingest_file(
        get_engine(url), PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=load_id_list(PUBMEDQA_TEST_IDS)
    )


@dataclass
class BuiltDatabase:
    url: str
    result: dict[str, Any]
    sim_metrics: dict[str, float]
    config_path: Path


@pytest.fixture(scope="session")
def built_pg_db(
    pg_template: str, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltDatabase]:
    """A Postgres database filled by a real build of 60 PubMedQA training questions over the simulator.

    Read-only for the tests that use it (exports, audits, reports); tests that write make their own.
    """
    from tests.conftest import _create_db, _db_url, _drop_db

    name = f"reasonmed_test_built_{uuid.uuid4().hex[:8]}"
    _create_db(name, template=pg_template)
    url = _db_url(name)
    old = os.environ.get("REASONMED_DATABASE_URL")
    try:
        use_database(url)
        ingest_pubmedqa(url)
        # Low simulated accuracy so every tier, refinement fallbacks and rejections all occur.
        with SimServer(
            questions_db=url, base_latency_ms=2, per_token_ms=0, default_accuracy=0.4, refine_accuracy=0.55
        ) as sim:
            cfg = write_sim_config(tmp_path_factory.mktemp("built") / "pipeline.yaml", sim.base_url)
            result = run_build(limit=60, config=str(cfg), shard_size=30)
            metrics = sim.metrics()
        yield BuiltDatabase(url=url, result=result, sim_metrics=metrics, config_path=cfg)
    finally:
        if old is None:
            os.environ.pop("REASONMED_DATABASE_URL", None)
        else:
            os.environ["REASONMED_DATABASE_URL"] = old
        get_engine(url).dispose()
        _drop_db(name)
