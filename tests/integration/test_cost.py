"""Money, from the per-endpoint prices of the pipeline file: the run's display (spent and projected), the
token audit view's cost_usd column, and the dry run's estimate, each checked against SQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import text

from reasonmed.db import migrate
from reasonmed.db.engine import make_engine
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS, write_sim_config

LIMIT = 6


def _cli(folder: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONMED_", "PREFECT_API"))}
    env.update(PREFECT_HOME=str(folder / "prefect"), COLUMNS="200", REASONMED_DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "reasonmed", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _priced(path: Path, sim_url: str) -> dict[str, tuple[float, float]]:
    write_sim_config(path, sim_url)
    data = yaml.safe_load(path.read_text())
    prices = {}
    for i, (name, ep) in enumerate(sorted(data["endpoints"].items())):
        prices[name] = (0.5 * (i + 1), 2.0 * (i + 1))
        ep.update(price_input_per_mtok=prices[name][0], price_output_per_mtok=prices[name][1])
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return prices


def test_cost_in_the_run_the_audit_view_and_the_dry_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'priced.db'}"
    migrate.upgrade(url)
    ingest = _cli(
        tmp_path,
        url,
        "ingest",
        str(PUBMEDQA_FILE),
        "--format",
        "pubmedqa",
        "--benchmark-test-ids",
        str(PUBMEDQA_TEST_IDS),
    )
    assert ingest.returncode == 0, ingest.stderr
    with SimServer(questions_db=url, base_latency_ms=1, per_token_ms=0) as sim:
        prices = _priced(tmp_path / "priced.yaml", sim.base_url)
        run = _cli(tmp_path, url, "run", "--config", str(tmp_path / "priced.yaml"), "--limit", str(LIMIT))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        dry = _cli(
            tmp_path, url, "run", "--dry-run", "--config", str(tmp_path / "priced.yaml"), "--limit", "50"
        )
        assert dry.returncode == 0, dry.stderr

    engine = make_engine(url)
    with engine.connect() as c:
        calls = c.execute(
            text(
                "select endpoint, role, prompt_tokens, completion_tokens, status, question_id from llm_calls"
            )
        ).all()
        view = c.execute(text("select sum(cost_usd), sum(prompt_tokens) from audit_token_usage")).one()
        stored = {
            r.endpoint: (r.price_input_per_mtok, r.price_output_per_mtok)
            for r in c.execute(text("select * from endpoint_prices"))
        }
    engine.dispose()
    assert stored == prices  # the run recorded the prices its pipeline file gave

    def cost(endpoint: str, p: float, c: float) -> float:
        return (p * prices[endpoint][0] + c * prices[endpoint][1]) / 1e6

    spent = sum(cost(r.endpoint, r.prompt_tokens or 0, r.completion_tokens or 0) for r in calls)
    assert spent > 0 and abs(view[0] - spent) < 1e-9  # the audit view's cost column

    shown = re.search(r"cost\s+\$([\d.,]+) spent, ~\$([\d.,]+) projected for (\d+) questions", run.stdout)
    assert shown, run.stdout[-2000:]
    # The display counts what the client spent (the database holds the same calls: no faults here).
    assert abs(float(shown.group(1)) - spent) <= 0.0001 + 1e-9 and int(shown.group(3)) == LIMIT
    assert abs(float(shown.group(2)) - float(shown.group(1))) < 0.0002  # all done: projected = spent
    assert re.search(r"time left\s+none, every question has settled", run.stdout), run.stdout[-2000:]

    # The dry run: history per (role, endpoint) scaled to 50 questions, at the same prices.
    ok = [r for r in calls if r.status == "ok"]
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for r in ok:
        groups.setdefault((r.role, r.endpoint), []).append((r.prompt_tokens or 0, r.completion_tokens or 0))
    expected = 0.0
    for (_role, endpoint), rows in groups.items():
        n = round(len(rows) / LIMIT * 50)
        p = round(n * sum(x for x, _ in rows) / len(rows))
        c_ = round(n * sum(y for _, y in rows) / len(rows))
        expected += cost(endpoint, p, c_)
    assert f"cost: ${expected:,.2f}" in dry.stdout, dry.stdout
    assert "dry run: 50 pending question(s); figures from history of 6 finished question(s)" in dry.stdout

    # The same dry run with the summariser on the Batch API: its share at half the price, the rest unchanged.
    data = yaml.safe_load((tmp_path / "priced.yaml").read_text())
    data["endpoints"]["sim-summarizer"]["mode"] = "batch"
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    batch_dry = _cli(
        tmp_path, url, "run", "--dry-run", "--config", str(tmp_path / "batch.yaml"), "--limit", "50"
    )
    assert batch_dry.returncode == 0, batch_dry.stderr
    summaries = 0.0
    for (_role, endpoint), rows in groups.items():
        if endpoint == "sim-summarizer":
            n = round(len(rows) / LIMIT * 50)
            summaries += cost(
                endpoint,
                round(n * sum(x for x, _ in rows) / len(rows)),
                round(n * sum(y for _, y in rows) / len(rows)),
            )
    assert summaries > 0
    line = f"batch price (mode batch: sim-summarizer): ${expected - summaries / 2:,.2f} in all, against ${expected:,.2f}"
    assert line in batch_dry.stdout, batch_dry.stdout

    as_json = _cli(tmp_path, url, "audit", "--view", "audit_token_usage", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)["audit_token_usage"]
    assert abs(sum(r["cost_usd"] for r in rows) - spent) < 1e-9


def test_growth_report_shows_cost_per_sample() -> None:
    from reasonmed.nightly.report import Growth, render_markdown

    def night(cost: float | None, before: int, after: int) -> Growth:
        build = {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            **({"cost_usd": cost} if cost is not None else {}),
        }
        return Growth(
            nightly_run_id=1,
            started_at="2026-12-02",
            parameters={},
            before={"samples": before},
            after={"samples": after},
            build=build,
        )

    priced = night(1.5, 10, 40)
    assert priced.summary()["cost_usd"] == 1.5 and priced.summary()["cost_per_sample_usd"] == 0.05
    assert "| cost per sample added | $0.0500 | |" in render_markdown(priced)
    nothing_added = night(1.5, 40, 40)
    assert nothing_added.cost_per_sample_usd is None
    unpriced = night(None, 10, 40)
    assert unpriced.summary()["cost_usd"] is None
    assert "| cost at the pipeline file's prices | — (no prices in the pipeline file) | |" in render_markdown(
        unpriced
    )
