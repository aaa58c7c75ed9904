"""Canary secrets planted in every input a run takes (environment, URL userinfo, a URL's query keys and
fragment, engine args, a Prefect Secret block, the database URL's password in userinfo and query, a
Basic credential a server echoes in a 500 reply, a wrong-scheme base_url) must reach none of: the
database (every text column of every table), the Python logs, stdout/stderr of the CLI, the Prefect
API's state (flow runs' parameters and state messages, events, logs, artifacts: its whole database), the
exports and their dataset card, the simulator's command line, ``config show``. One real run (ingest,
build, export), then the runs and commands that fail on the hostile inputs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from reasonmed.db.engine import make_engine
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import REPO, ingest_pubmedqa, run_build

pytestmark = pytest.mark.postgres

CANARIES = {
    "db_password": "canaryDBpw7f3a9",
    "db_query_password": "canaryDBQpw2b8e",
    "url_password": "canaryURLpw5c21",
    "api_key": "canaryAPIkey44e2",
    "hf_token": "canaryHFtok81bc",
    "literal_token": "canaryLITtok0d9e",
    "prefect_secret": "canaryBLOCK9d0e",
    "s3_password": "canaryS3pw6a7b",
    "echo_password": "canaryECHOpw1f5d",
    "query_api_key": "canaryQAPI3c9a",
    "query_key": "canaryQKEY8e21",
    "fragment": "canaryFRAG5d07",
    "unreachable_token": "canaryUNRtok6b3f",
    "wrong_scheme_password": "canaryHTPpw0a4c",
}
# The server echoes the Authorization header the client built from the URL's userinfo: base64 of it.
CANARIES["echo_basic"] = base64.b64encode(f"echo:{CANARIES['echo_password']}".encode()).decode()


def _pipeline(path: Path) -> Path:
    data = yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())
    for i, ep in enumerate(data["endpoints"].values()):
        ep.update(
            base_url="${CANARY_SIM_URL}",
            timeout_s=5.0,
            max_in_flight=16,
            backoff_base_s=0.05,
            backoff_max_s=0.5,
            max_retries=8,
            connect_timeout_s=2.0,
        )
        if i == 0:  # an API key and credentials in the URL would be two Authorization headers
            ep.update(api_key_env="CANARY_API_KEY", base_url="${CANARY_SIM_URL_PLAIN}")
        if i == 1:
            ep.update(api_key_secret="canary-block", base_url="${CANARY_SIM_URL_PLAIN}")
        if i == 2:
            ep["engine_args"] = {
                "hf_token": "${CANARY_HF_TOKEN}",
                "download_token": CANARIES["literal_token"],
            }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _with_first_endpoint(source: Path, path: Path, base_url: str, **endpoint: Any) -> Path:
    """``source`` with its first endpoint (the first generator's) at ``base_url``, written literally; no
    Secret block (the CLI reads none: these files go through ``config check`` and ``run`` too)."""
    data = yaml.safe_load(source.read_text())
    for ep in data["endpoints"].values():
        ep.pop("api_key_secret", None)
    first = next(iter(data["endpoints"].values()))
    first.pop("api_key_env", None)
    first.update(base_url=base_url, **endpoint)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class _Echo(BaseHTTPRequestHandler):
    """A server that lists every model and answers each completion with a 500 that repeats the request
    line and headers (JSON and raw), as a debugging proxy does."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._reply(200, json.dumps({"object": "list", "data": [], "serves_any_model": True}))

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        raw = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
        self._reply(
            500, json.dumps({"error": "boom", "request": self.requestline, "headers": headers}) + "\n" + raw
        )

    def _reply(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@contextmanager
def _echo_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _leaks(where: str, blob: str) -> list[str]:
    return [f"{name} in {where}" for name, value in CANARIES.items() if value in blob]


def _cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    from reasonmed.cli import app

    return CliRunner().invoke(app, args, env=env)


def _build_state(**params: Any) -> Any:
    from reasonmed.flows.build import build_dataset

    return asyncio.run(build_dataset(**params, return_state=True))


def _prefect_database_text(last_flow_run: str) -> str:
    """Every row of every table of the Prefect API's database (flow and task runs with their parameters
    and states, events, logs, artifacts, blocks), as text, once the events of ``last_flow_run`` are in
    (the server writes events in batches)."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    path = make_url(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).database
    assert path and Path(path).is_file(), path
    deadline = time.monotonic() + 60
    while True:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
            rows = [repr(row) for t in tables for row in con.execute(f'select * from "{t}"')]
            failed_event = con.execute(
                "select count(*) from events where event = 'prefect.flow-run.Failed' and resource_id like ?",
                (f"%{last_flow_run}%",),
            ).fetchone()[0]
        finally:
            con.close()
        if failed_event or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert failed_event, "the last flow run's Failed event never reached the Prefect database"
    return "\n".join(rows)


async def _prefect_api_text() -> tuple[str, list[str]]:
    """What the Prefect API answers about flow runs (parameters, state messages), artifacts and logs; and
    the state messages alone."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs()
        arts = await client.read_artifacts()
        logs = await client.read_logs()
    messages = [r.state.message or "" for r in runs if r.state is not None]
    return (
        "\n".join(
            [
                *(f"{r.name} {json.dumps(r.parameters, default=str)} {r.state!r}" for r in runs),
                *(f"{a.key} {a.description} {a.data}" for a in arts),
                *(lg.message for lg in logs),
            ]
        ),
        messages,
    )


def test_canary_secrets_reach_no_database_log_artifact_export_or_argv(
    pg_url: str,
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    unused_tcp_port: int,
) -> None:
    from prefect.blocks.system import Secret

    from reasonmed.flows.export import export_dataset

    caplog.set_level(logging.DEBUG)
    url = make_url(pg_url).set(password=CANARIES["db_password"]).render_as_string(hide_password=False)
    Secret(value=CANARIES["prefect_secret"]).save("canary-block", overwrite=True)
    monkeypatch.setenv("REASONMED_DATABASE_URL", url)
    monkeypatch.setenv("REASONMED_S3_ENDPOINT_URL", f"http://s3user:{CANARIES['s3_password']}@127.0.0.1:9")
    monkeypatch.setenv("REASONMED_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("CANARY_API_KEY", CANARIES["api_key"])
    monkeypatch.setenv("CANARY_HF_TOKEN", CANARIES["hf_token"])
    leaks: list[str] = []
    printed: list[str] = []
    with SimServer(questions_db=url, base_latency_ms=1, per_token_ms=0) as sim, _echo_server() as echo_port:
        assert sim._proc is not None
        cmdline = Path(f"/proc/{sim._proc.pid}/cmdline").read_bytes().decode(errors="replace")
        leaks += _leaks("simulator argv", cmdline)
        assert "reasonmed.sim" in cmdline
        sim_url = sim.base_url.replace("http://", f"http://canary:{CANARIES['url_password']}@")
        monkeypatch.setenv("CANARY_SIM_URL", sim_url)
        monkeypatch.setenv("CANARY_SIM_URL_PLAIN", sim.base_url)
        cfg = _pipeline(tmp_path / "pipeline.yaml")
        ingest_pubmedqa(url)
        result = run_build(limit=4, config=str(cfg), shard_size=2, questions_in_flight=2)
        assert result["done"] == 4
        export_dataset(out=str(tmp_path / "exports"), formats=["jsonl"], allow_simulated=True)

        # A server that echoes the request (query keys in its request line, the Basic credential made of
        # the URL's userinfo in its headers) in a 500: the first generator's calls fail, and their errors
        # are stored in llm_calls.error and question_failures.
        echo_cfg = _with_first_endpoint(
            cfg,
            tmp_path / "echo.yaml",
            f"http://echo:{CANARIES['echo_password']}@127.0.0.1:{echo_port}/v1"
            f"?api_key={CANARIES['query_api_key']}&key={CANARIES['query_key']}#{CANARIES['fragment']}",
            max_retries=1,
        )
        ping = _cli(["config", "check", "--ping", "--config", str(echo_cfg)])
        assert ping.exit_code == 0 and "api_key=***&key=***" in ping.output, ping.output
        printed.append(ping.output)
        echoed = _build_state(limit=1, config=str(echo_cfg), shard_size=1, questions_in_flight=1)
        assert echoed.is_failed(), echoed

        # A preflight that fails on an endpoint whose URL carries a token: `reasonmed run` prints each
        # endpoint's line, and the flow run's state (and its events) hold the same lines.
        unreachable = _with_first_endpoint(
            cfg,
            tmp_path / "unreachable.yaml",
            f"http://127.0.0.1:{unused_tcp_port}/v1?token={CANARIES['unreachable_token']}",
        )
        run = _cli(["run", "--config", str(unreachable), "--limit", "1"])
        assert run.exit_code == 3 and "token=***" in run.output, run.output
        printed.append(run.output)

    # A wrong-scheme base_url with a password: `config check` and `run` refuse it in one line, and a flow
    # run given it fails with that line as its state message.
    wrong = _with_first_endpoint(
        cfg, tmp_path / "wrong.yaml", f"htp://user:{CANARIES['wrong_scheme_password']}@127.0.0.1/v1"
    )
    for args in (["config", "check", "--config", str(wrong)], ["run", "--config", str(wrong)]):
        refused = _cli(args)
        assert refused.exit_code == 2 and "htp://user:***@127.0.0.1/v1" in refused.output, refused.output
        printed.append(refused.output)
    wrong_state = _build_state(config=str(wrong))
    assert wrong_state.is_failed() and "htp://user:***@" in (wrong_state.message or ""), wrong_state

    shown = _cli(["config", "show"])
    assert shown.exit_code == 0, shown.output
    assert "postgres:***@" in shown.output and "s3user:***@" in shown.output
    query_url = make_url(pg_url).update_query_dict({"password": CANARIES["db_query_password"]})
    shown_query = _cli(
        ["config", "show"], env={"REASONMED_DATABASE_URL": query_url.render_as_string(hide_password=False)}
    )
    assert shown_query.exit_code == 0 and "password=***" in shown_query.output, shown_query.output
    printed += [shown.output, shown_query.output]
    leaks += _leaks("CLI output", "\n".join(printed))

    engine = make_engine(url)
    with engine.connect() as c:
        tables = (
            c.execute(text("select tablename from pg_tables where schemaname = 'public'")).scalars().all()
        )
        dump = "\n".join(
            str(row[0]) for t in tables for row in c.execute(text(f'select t::text from "{t}" t'))
        )
        snapshot = c.execute(
            text("select config_snapshot::text from pipeline_runs where kind = 'build' order by id limit 1")
        ).scalar_one()
        stored_errors = c.execute(
            text(
                "select (select count(*) from llm_calls where error like '%HTTP 500%'),"
                " (select count(*) from question_failures where last_error like '%HTTP 500%')"
            )
        ).one()
    engine.dispose()
    assert len(tables) > 10 and "llm_calls" in tables
    assert all(stored_errors), stored_errors  # the echoed replies were stored (masked)
    leaks += _leaks("database", dump)
    assert (
        "${CANARY_SIM_URL}" in snapshot and "${CANARY_HF_TOKEN}" in snapshot
    )  # where values come from, no value
    assert '"download_token": "***"' in snapshot

    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    out, err = capfd.readouterr()
    leaks += _leaks("python logs", logs) + _leaks("stdout/stderr", out + err)

    api_text, state_messages = asyncio.run(_prefect_api_text())
    assert api_text  # flow runs, artifacts and logs were written
    assert any("htp://user:***@" in m for m in state_messages), state_messages
    assert any("token=***" in m for m in state_messages), state_messages
    leaks += _leaks("Prefect API (flow runs, parameters, states, artifacts, logs)", api_text)
    last_run = str(wrong_state.state_details.flow_run_id)
    leaks += _leaks("Prefect database (events included)", _prefect_database_text(last_run))
    exported = [p for p in (tmp_path / "exports").rglob("*") if p.is_file()]
    assert exported and any(p.name == "README.md" for p in exported)  # the dataset card among them
    leaks += _leaks("exports", "\n".join(p.read_bytes().decode(errors="replace") for p in exported))
    assert not leaks, leaks
