"""Shared fixtures: a throwaway Postgres database per test run (cloned per test from a migrated
template), a migrated SQLite file, and the project's simulation server over real HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()

import psycopg  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from reasonmed.db import migrate  # noqa: E402
from reasonmed.db.engine import make_engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The PubMedQA PQA-L file and its test-split ids ship with the repository (data/pubmedqa/, MIT).
DATA = REPO / "data"
PUBMEDQA_FILE = DATA / "pubmedqa" / "ori_pqal.json"
PUBMEDQA_TEST_IDS = DATA / "pubmedqa" / "test_ground_truth.json"

# The server CI and developers have: trust auth on loopback, database `test`.
ADMIN_URL = os.environ.get("REASONMED_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_RUN_TAG = uuid.uuid4().hex[:8]

pytest_plugins = [
    "tests.fixtures_sim",
    "tests.fixtures_prefect",
    "tests.fixtures_pipeline",
    "tests.fixtures_finished",
    "tests.fixtures_llamacpp",
    "tests.fixtures_ops",
    "tests.export_helpers",
]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Prefect configures its console log handler once per process, on the stream sys.stderr is then. Done
    here, that is pytest's stream for the whole session; left to the first flow a CliRunner test starts, it
    would be that invocation's captured stream, closed when it returns, and every later flow's log line would
    fail. A run of unit tests alone starts no flow and does not import Prefect at all."""
    if all("tests/unit/" in item.nodeid.replace("\\", "/") for item in session.items):
        return
    from prefect.logging.configuration import setup_logging

    setup_logging()


def _admin_conninfo() -> str:
    u = make_url(ADMIN_URL)
    return f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} dbname={u.database or 'test'}"


def _db_url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _create_db(name: str, template: str | None = None) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def _drop_db(name: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head once per run; tests clone it (cheap) instead of migrating."""
    name = f"reasonmed_test_{_RUN_TAG}_tmpl"
    _create_db(name)
    url = _db_url(name)
    migrate.upgrade(url)
    make_engine(url).dispose()
    yield name
    _drop_db(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test; dropped afterwards."""
    name = f"reasonmed_test_{_RUN_TAG}_{uuid.uuid4().hex[:8]}"
    _create_db(name, template=pg_template)
    yield _db_url(name)
    _drop_db(name)


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A fresh Postgres database with no schema, for migration tests."""
    name = f"reasonmed_test_{_RUN_TAG}_{uuid.uuid4().hex[:8]}"
    _create_db(name)
    yield _db_url(name)
    _drop_db(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'reasonmed.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on Postgres and once on SQLite: the same models serve both."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()
