"""Canary secrets planted in every input a run takes (environment, URL userinfo, engine args, a Prefect
Secret block, the database URL) must reach none of: the database, the logs, the Prefect artifacts, the
exports, the simulator's command line, ``config show``. One real run: ingest, build, export."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from reasonmed.db.engine import make_engine
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import REPO, ingest_pubmedqa, run_build

pytestmark = pytest.mark.postgres

CANARIES = {
    "db_password": "canaryDBpw7f3a9",
    "url_password": "canaryURLpw5c21",
    "api_key": "canaryAPIkey44e2",
    "hf_token": "canaryHFtok81bc",
    "literal_token": "canaryLITtok0d9e",
    "prefect_secret": "canaryBLOCK9d0e",
    "s3_password": "canaryS3pw6a7b",
}


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


def _leaks(where: str, blob: str) -> list[str]:
    return [f"{name} in {where}" for name, value in CANARIES.items() if value in blob]


def test_canary_secrets_reach_no_database_log_artifact_export_or_argv(
    pg_url: str,
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

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
    with SimServer(questions_db=url, base_latency_ms=1, per_token_ms=0) as sim:
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

    from reasonmed.cli import app

    shown = CliRunner().invoke(app, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    leaks += _leaks("config show", shown.output)
    assert "postgres:***@" in shown.output and "s3user:***@" in shown.output

    engine = make_engine(url)
    with engine.connect() as c:
        tables = (
            c.execute(text("select tablename from pg_tables where schemaname = 'public'")).scalars().all()
        )
        dump = "\n".join(
            str(row[0]) for t in tables for row in c.execute(text(f'select t::text from "{t}" t'))
        )
        snapshot = c.execute(
            text("select config_snapshot::text from pipeline_runs where kind = 'build'")
        ).scalar_one()
    engine.dispose()
    assert len(tables) > 10 and "llm_calls" in tables
    leaks += _leaks("database", dump)
    assert (
        "${CANARY_SIM_URL}" in snapshot and "${CANARY_HF_TOKEN}" in snapshot
    )  # where values come from, no value
    assert '"download_token": "***"' in snapshot

    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    out, err = capfd.readouterr()
    leaks += _leaks("python logs", logs) + _leaks("stdout/stderr", out + err)

    async def prefect_side() -> str:
        async with get_client() as client:
            arts = await client.read_artifacts()
            logs = await client.read_logs()
        return "\n".join([*(f"{a.key} {a.description} {a.data}" for a in arts), *(lg.message for lg in logs)])

    prefect_text = asyncio.run(prefect_side())
    assert prefect_text  # artifacts and logs were written
    leaks += _leaks("Prefect artifacts and logs", prefect_text)
    exported = [p for p in (tmp_path / "exports").rglob("*") if p.is_file()]
    assert exported
    leaks += _leaks("exports", "\n".join(p.read_bytes().decode(errors="replace") for p in exported))
    assert not leaks, leaks

