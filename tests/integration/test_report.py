"""``reasonmed report`` / ``reasonmed audit`` over the built database, and the report flow's artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasonmed.cli import app
from reasonmed.db import audit_repo
from reasonmed.db.engine import make_engine
from reasonmed.report.figures import FIGURES
from reasonmed.report.service import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *args: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REASONMED_DATABASE_URL", url)
    return CliRunner().invoke(app, list(args))


@pytest.mark.postgres
def test_report_writes_html_and_pngs(built_pg_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report"
    res = _cli(monkeypatch, built_pg_db.url, "report", "--out", str(out))
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert images == [f"{name}.png" for name in FIGURES]
    for name in images:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    # The tables carry the database's numbers: the tiers the build produced, and every stage's tokens.
    engine = make_engine(built_pg_db.url)
    try:
        for row in audit_repo.tier_totals(engine):
            assert f"<td>{row['tier']}</td>" in page
        for row in audit_repo.tokens_by_stage(engine):
            assert f"<td>{row['stage']}</td>" in page
        # the build's easy questions were accepted: their row has a cost per sample, as the view computes it
        easy = [r for r in audit_repo.view_rows(engine, "audit_cost_per_sample") if r["tier"] == "easy"]
        assert easy and all(f"<td>{r['prompt_tokens_per_sample']:.4g}</td>" in page for r in easy)
    finally:
        engine.dispose()
    assert "Path-length histogram (words)" in page and "Rejections by reason" in page
    assert "Tokens and engine time per accepted sample" in page and "<th>engine_s_per_sample</th>" in page


@pytest.mark.postgres
def test_audit_command_prints_the_key_views(built_pg_db, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _cli(monkeypatch, built_pg_db.url, "audit", "--limit", "100")
    assert res.exit_code == 0, res.output
    for view in (
        "audit_tier_distribution",
        "audit_verifier_accuracy",
        "audit_refinement_success",
        "audit_rejected_questions",
        "audit_token_usage",
    ):
        assert view in res.output
    assert "judged error" in res.output  # the rejected-path summary
    one = _cli(monkeypatch, built_pg_db.url, "audit", "--view", "audit_rejected_paths", "--limit", "3")
    assert one.exit_code == 0 and "(3 of " in one.output
    bad = _cli(monkeypatch, built_pg_db.url, "audit", "--view", "questions")
    assert bad.exit_code != 0


def test_report_on_an_empty_database(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    try:
        result = write_report(engine, tmp_path)
    finally:
        engine.dispose()
    assert set(result.figures) == set(FIGURES)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in result.figures.values())
    assert "no rows" in result.index.read_text()


@pytest.mark.postgres
def test_report_flow_attaches_figures_and_tables(
    built_pg_db, prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from reasonmed.flows.report import TABLE_KEYS, audit_report

    monkeypatch.setenv("REASONMED_DATABASE_URL", built_pg_db.url)
    state = audit_report(out=str(tmp_path / "r"), return_state=True)
    result = state.result()
    assert Path(result["index"]).is_file()
    assert set(result["artifacts"]) == {"audit-report-figures", *TABLE_KEYS.values()}
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {a.key: a for a in arts}
    assert set(by_key) == set(result["artifacts"])
    figures = str(by_key["audit-report-figures"].data)
    assert figures.count("data:image/png;base64,") == len(FIGURES)
    assert "http://" not in figures and "https://" not in figures  # images embedded, never hosted
    assert by_key["audit-tier-distribution"].type == "table"
