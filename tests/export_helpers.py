"""Helpers for the export, audit and report tests: writable copies of the built database, a real moto
S3 server process, and the independent SQL the tests compare exports against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from reasonmed.db.engine import get_engine
from tests.conftest import _admin_conninfo, _db_url, _drop_db

# Independent of reasonmed.db.export_repo on purpose: what the three datasets must contain.
EXPECTED_ROWS_SQL = """
    SELECT q.id AS question_id, a.rank, a.path_id, q.source, q.answer, p.clean_text, s.text AS summary
    FROM accepted_paths a
    JOIN question_outcomes o ON o.question_id = a.question_id AND o.status = 'accepted'
    JOIN questions q ON q.id = a.question_id AND NOT q.is_benchmark_test
    JOIN reasoning_paths p ON p.id = a.path_id
    JOIN summaries s ON s.id = (SELECT min(s2.id) FROM summaries s2 WHERE s2.path_id = a.path_id)
    ORDER BY q.id, a.rank"""


def no_contamination(engine: Engine) -> Mapping[int, str]:
    return {}


def expected_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(EXPECTED_ROWS_SQL)).mappings()]


def clone_database(src_url: str) -> str:
    """A copy of ``src_url`` (CREATE DATABASE ... TEMPLATE) that a test may write to."""
    src = make_url(src_url).database
    name = f"reasonmed_test_copy_{uuid.uuid4().hex[:8]}"
    get_engine(src_url).dispose()  # the template must have no open connections
    for attempt in range(10):
        try:
            with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{src}"')
            return _db_url(name)
        except psycopg.errors.ObjectInUse:
            # Idle pooled connections of this test process (e.g. another engine on the same URL).
            with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (src,),
                )
            time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"could not copy database {src}")


def drop_database(url: str) -> None:
    get_engine(url).dispose()
    _drop_db(make_url(url).database)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def built_copy(built_pg_db) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A writable copy of the built database, shared by one test module."""
    url = clone_database(built_pg_db.url)
    yield url
    drop_database(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """A real moto S3 server process on a free loopback port; yields its endpoint URL."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"moto-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1.0).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through the standard AWS chain (environment), no real config files."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
