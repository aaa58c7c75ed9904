"""Common mistakes, as a user makes them: each ends in one line on stderr that says what to do, a
non-zero exit code and no traceback (the CLI's one place for this is ``reasonmed.cli.errors``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasonmed.db import migrate
from tests.fixtures_pipeline import PUBMEDQA_FILE

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
CLOSED_SIM = "http://127.0.0.1:1/v1"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONMED_", "PREFECT_API"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env.update(extra)
    return env


def reasonmed(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reasonmed", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(out: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The command ended with exit ``code`` and exactly one error line holding every fragment."""
    everything = out.stdout + out.stderr
    assert out.returncode == code, everything[-2000:]
    assert "Traceback" not in everything, everything[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith(("error:", "configuration error:"))]
    assert len(errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def sqlite_at(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A SQLite database migrated to a given revision."""

    def make(revision: str, name: str = "reasonmed.db") -> str:
        url = f"sqlite:///{tmp_path / name}"
        migrate.upgrade(url, revision)
        return url

    return make


UNREACHABLE_COMMANDS = [
    ["db", "upgrade"],
    ["db", "current"],
    ["audit"],
    ["report", "--out", "rep"],
    ["export", "--out", "exp"],
    ["run"],
    ["eval", "--model-endpoint", "sim-qwen"],
    ["show", "1"],
    ["ingest", str(PUBMEDQA_FILE), "--format", "pubmedqa"],
]


@pytest.mark.parametrize("args", UNREACHABLE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_database_unreachable(tmp_path: Path, args: list[str]) -> None:
    out = reasonmed(tmp_path, *args, REASONMED_DATABASE_URL=UNREACHABLE_PG)
    assert_one_line(
        out,
        2,
        "cannot reach database postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        "REASONMED_DATABASE_URL",
    )


NOT_MIGRATED_COMMANDS = [
    ["audit"],
    ["export", "--out", "exp"],
    ["report", "--out", "rep"],
    ["show", "1"],
    ["score", "--dataset", "1"],
    ["retry", "--all-failed"],
    ["run"],
]


@pytest.mark.parametrize("args", NOT_MIGRATED_COMMANDS, ids=lambda a: a[0])
def test_database_at_an_older_revision(tmp_path: Path, sqlite_at, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("0004")
    out = reasonmed(tmp_path, *args, REASONMED_DATABASE_URL=url)
    assert_one_line(out, 2, "database schema is at revision 0004", "run `reasonmed db upgrade` first")
    assert migrate.current_revision(migrate_engine(url)) == "0004"  # never migrated behind the user's back


def migrate_engine(url: str):  # type: ignore[no-untyped-def]
    from reasonmed.db.engine import make_engine

    return make_engine(url)


def test_postgres_database_without_tables(tmp_path: Path, empty_pg_url: str) -> None:
    """An empty server database is not created by `run` (only a new SQLite file is): it names the fix."""
    out = reasonmed(tmp_path, "audit", REASONMED_DATABASE_URL=empty_pg_url)
    assert_one_line(out, 2, "revision none", "reasonmed db upgrade")


def test_unknown_dataset_version(tmp_path: Path, sqlite_at) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("head")
    out = reasonmed(tmp_path, "score", "--dataset", "9", REASONMED_DATABASE_URL=url)
    assert_one_line(out, 2, "dataset version 9 does not exist", "reasonmed export")


def test_wrong_format_names_the_right_one(tmp_path: Path, sqlite_at) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("head")
    out = reasonmed(tmp_path, "ingest", str(PUBMEDQA_FILE), "--source", "medqa", REASONMED_DATABASE_URL=url)
    assert_one_line(
        out,
        1,
        "all 35,173 records were rejected as --format medqa",
        "it looks like pubmedqa: run again with --format pubmedqa",
    )
    right = reasonmed(
        tmp_path, "ingest", str(PUBMEDQA_FILE), "--format", "pubmedqa", REASONMED_DATABASE_URL=url
    )
    assert right.returncode == 0, right.stderr
    assert "1,000" in right.stdout


def test_missing_simulator(tmp_path: Path, sqlite_at) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("head")
    out = reasonmed(
        tmp_path,
        "eval",
        "--model-endpoint",
        "sim-qwen",
        REASONMED_DATABASE_URL=url,
        REASONMED_SIM_URL=CLOSED_SIM,
    )
    assert_one_line(out, 2, "endpoint sim-qwen", "FAILED", "reasonmed sim-server", "--config FILE")


@pytest.mark.parametrize(
    "args", [["export", "--out", "taken"], ["report", "--out", "taken"]], ids=lambda a: a[0]
)
def test_output_path_is_an_existing_file(tmp_path: Path, sqlite_at, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("head")
    (tmp_path / "taken").write_text("keep me")
    out = reasonmed(tmp_path, *args, REASONMED_DATABASE_URL=url)
    assert_one_line(out, 2, "--out taken is an existing file", "give a folder")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_unknown_question(tmp_path: Path, sqlite_at) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_at("head")
    out = reasonmed(tmp_path, "show", "424242", REASONMED_DATABASE_URL=url)
    assert_one_line(out, 1, "no question with id 424242")


def test_run_on_a_new_database_creates_it_and_says_how_to_start(tmp_path: Path) -> None:
    """One command on the embedded default: the new SQLite file is created and migrated by `run` itself;
    with no question in it, the line names the exact command to start with."""
    out = reasonmed(tmp_path, "run")
    db = (tmp_path / "reasonmed-sim.db").resolve()  # no config: the simulator, on its own database
    assert (
        f"new database {db}: created and migrated to revision {migrate.head_revision(f'sqlite:///{db}')}"
        in out.stdout
    )
    assert_one_line(
        out,
        1,
        "no training questions yet",
        "reasonmed run data/pubmedqa/ori_pqal.json --format pubmedqa "
        "--benchmark-test-ids data/pubmedqa/test_ground_truth.json",
    )
    assert migrate.current_revision(migrate_engine(f"sqlite:///{db}")) == migrate.head_revision(
        f"sqlite:///{db}"
    )


def test_serve_refuses_to_start_without_a_prefect_api(tmp_path: Path) -> None:
    """Without PREFECT_API_URL (environment or profile) Prefect would serve on a temporary server that
    vanishes, schedule and runs with it, when the command stops: `serve` says what to do instead."""
    import time

    started = time.monotonic()
    out = reasonmed(tmp_path, "serve")
    assert_one_line(out, 2, "no Prefect API", "prefect server start", "PREFECT_API_URL")
    assert time.monotonic() - started < 60  # no temporary server was started and waited for
    # the profile's API URL counts as configured (`prefect config set PREFECT_API_URL=...` is the advice)
    (tmp_path / "prefect").mkdir(exist_ok=True)
    (tmp_path / "prefect" / "profiles.toml").write_text(
        'active = "here"\n[profiles.here]\nPREFECT_API_URL = "http://127.0.0.1:1/api"\n'
    )
    out = reasonmed(tmp_path, "serve", "--prefect-file", str(tmp_path / "missing.yaml"))
    assert out.returncode == 1 and "missing.yaml: no such file" in out.stderr  # past the API check
