"""Fixtures for the operations tests: a real Prefect server on a Postgres database of its own, small
question files, and environments for the worker processes the tests start.

The Prefect server is shared by every module that asks for it (it takes ~30 s to migrate a fresh
database), started on first use and stopped when the last user is torn down. Every process started here
is stopped again, on failure too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reasonmed.privacy import OFFLINE_DEFAULTS
from tests.conftest import ADMIN_URL, _create_db, _drop_db
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS, REPO

PYTHON = sys.executable
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one's, offline, with the repository importable."""
    env = {**os.environ, **OFFLINE_DEFAULTS, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def asyncpg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return (
        make_url(ADMIN_URL)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


class PrefectServer:
    """``prefect server start`` on a free loopback port, its own Postgres database and PREFECT_HOME."""

    def __init__(self, *, ui: bool = False) -> None:
        self.db_name = f"reasonmed_prefect_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="reasonmed-prefect-home-"))
        self.ui = ui
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for processes that talk to this server (CLI, workers, flow runs)."""
        home = self.home / "client"
        home.mkdir(exist_ok=True)
        return base_env(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(home), **extra)

    def start(self, timeout_s: float = 180.0) -> PrefectServer:
        _create_db(self.db_name)
        env = base_env(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=asyncpg_url(self.db_name),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="true" if self.ui else "false",
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_LOGGING_SERVER_LEVEL="WARNING",
        )
        env.pop("PREFECT_API_URL", None)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.home,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"prefect server exited during start-up:\n{self.log_tail()}")
            try:
                if httpx.get(self.api_url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prefect server not healthy within {timeout_s:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)
        _drop_db(self.db_name)


def stop_process(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:  # type: ignore[type-arg]
    """SIGTERM the process (and its group, when it leads one), then SIGKILL if it lingers."""
    import signal

    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
        group = pgid == proc.pid
    except ProcessLookupError:
        return
    send = (lambda sig: os.killpg(pgid, sig)) if group else proc.send_signal
    try:
        send(signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


# One server per test session, however many modules use it.
_shared: dict[str, object] = {"server": None, "users": 0}
_shared_lock = threading.Lock()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """Session-scoped in every module that imports it; the first starts the server, the last stops it."""
    with _shared_lock:
        if _shared["server"] is None:
            _shared["server"] = PrefectServer().start()
        _shared["users"] = int(_shared["users"]) + 1  # type: ignore[call-overload]
    server = _shared["server"]
    assert isinstance(server, PrefectServer)
    try:
        yield server
    finally:
        with _shared_lock:
            _shared["users"] = int(_shared["users"]) - 1  # type: ignore[call-overload]
            last = _shared["users"] == 0
            if last:
                _shared["server"] = None
        if last:
            server.stop()


# --------------------------------------------------------------------------- question files


def pubmedqa_train_items(n: int, skip: int = 0) -> dict[str, object]:
    """``n`` PubMedQA items outside its test split (the file's order), after skipping ``skip``."""
    data = json.loads(PUBMEDQA_FILE.read_text())
    test_ids = set(json.loads(PUBMEDQA_TEST_IDS.read_text()))
    train = [(k, v) for k, v in data.items() if k not in test_ids]
    return dict(train[skip : skip + n])


def write_pubmedqa(path: Path, n: int, skip: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pubmedqa_train_items(n, skip)))
    return path


def write_medqa(path: Path, n: int) -> Path:
    """A small MedQA-format JSONL file (invented questions; the simulator reads answers from the DB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        options = {"A": f"option a{i}", "B": f"option b{i}", "C": f"option c{i}", "D": f"option d{i}"}
        rows.append(
            {
                "id": f"mq{i}",
                "question": f"Which option is right for case {i}?",
                "options": options,
                "answer_idx": "ABCD"[i % 4],
                "answer": options["ABCD"[i % 4]],
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path
