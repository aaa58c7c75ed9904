"""Integers, outputs and databases a user can get wrong (issue 24, item 7 and the first-hour review): each
ends in one line on stderr, never a traceback, and leaves nothing behind.

Run as a user runs them (a subprocess of ``python -m reasonmed``), like ``test_cli_errors``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reasonmed.db import migrate
from tests.integration.test_cli_errors import assert_one_line, reasonmed

HUGE = "99999999999999999999999"  # past 64 bits: SQLite's driver raised OverflowError on it


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'reasonmed.db'}"
    migrate.upgrade(url)
    return url


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["show", HUGE], f"QUESTION_ID {HUGE} is out of range"),
        (["show", "--", "-5"], "QUESTION_ID -5 is out of range"),
        (["audit", "--limit", HUGE], f"--limit {HUGE} is out of range"),
        (["retry", "--question", "3", "--question", HUGE], f"--question {HUGE} is out of range"),
        (["rejudge", "--stage", "verify", "--where", f"question_id={HUGE}"], f"--where question_id={HUGE}"),
        (["rejudge", "--stage", "verify", "--where", f"run_id=-{HUGE}"], f"--where run_id=-{HUGE}"),
        (["score", "--seed", HUGE], f"--seed {HUGE} is out of range"),
        (["score", "--compare", "1", HUGE], f"--compare {HUGE} is out of range"),
        (["export", "--shard-rows", HUGE], f"--shard-rows {HUGE} is out of range"),
        (["run", "--limit", HUGE], f"--limit {HUGE} is out of range"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None,
)
def test_an_integer_out_of_range_is_one_line(
    tmp_path: Path, migrated: str, args: list[str], shown: str
) -> None:
    out = reasonmed(tmp_path, *args, REASONMED_DATABASE_URL=migrated)
    line = assert_one_line(out, 2, shown)
    assert re.search(r"expected -?[\d,]+ to 9,223,372,036,854,775,807\)$", line), line


@pytest.mark.parametrize("command", [["export", "--out"], ["report", "--out"]], ids=lambda c: c[0])
def test_a_dangling_out_symlink_is_refused(tmp_path: Path, migrated: str, command: list[str]) -> None:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone" / "away")
    out = reasonmed(tmp_path, *command, "out", REASONMED_DATABASE_URL=migrated)
    assert_one_line(out, 2, "--out out is a symbolic link to", "which does not exist")
    assert not (tmp_path / "gone").exists() and link.is_symlink()


@pytest.mark.parametrize(
    "target", ["s3://bucket/exports/../other", "s3://bucket/a/./b", "s3://bucket/a//b", "s3://bucket/.."]
)
def test_an_s3_export_prefix_with_dot_segments_is_refused(tmp_path: Path, migrated: str, target: str) -> None:
    out = reasonmed(tmp_path, "export", "--out", target, REASONMED_DATABASE_URL=migrated)
    assert_one_line(out, 2, f"--out {target}: prefix has an empty, '.' or '..' path segment")


def test_an_empty_database_exports_nothing_and_says_so(tmp_path: Path, migrated: str) -> None:
    """README: a command that finds nothing to do exits 1. An empty database wrote v0001 with six empty
    data files and exited 0; now it writes nothing, not even the --out folder."""
    out = reasonmed(tmp_path, "export", "--out", "exports", REASONMED_DATABASE_URL=migrated)
    assert_one_line(out, 1, "no accepted path in this database: nothing to export")
    assert not (tmp_path / "exports").exists()
    from sqlalchemy import create_engine, text

    with create_engine(migrated).connect() as c:
        assert c.execute(text("SELECT count(*) FROM dataset_versions")).scalar() == 0


@pytest.mark.parametrize("args", [["show", "1"], ["audit"], ["db", "current"], ["retry", "--all-failed"]])
def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "typo.db"
    out = reasonmed(tmp_path, *args, "--database-url", f"sqlite:///{missing}")
    assert_one_line(out, 2, f"no database file at {missing}", "nothing was created")
    assert not missing.exists() and not list(tmp_path.glob("typo.db*"))


def test_rejudge_is_in_the_pipeline_panel_and_its_stage_is_a_choice(tmp_path: Path) -> None:
    top = reasonmed(tmp_path, "--help", COLUMNS="120")
    assert top.returncode == 0, top.stderr
    panels = re.split(r"\n╭─ ", top.stdout)
    pipeline = next(p for p in panels if p.startswith("Pipeline"))
    assert re.search(r"│ rejudge\s", pipeline), top.stdout
    help_ = reasonmed(tmp_path, "rejudge", "--help", COLUMNS="120")
    assert "<verify|rank|summarize>" in help_.stdout, help_.stdout
    wrong = reasonmed(tmp_path, "rejudge", "--stage", "verfy", COLUMNS="200")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "'verfy' is not one of 'verify', 'rank', 'summarize'" in " ".join(wrong.stderr.split())
