"""A finished simulated run, shared by the tests that inspect one (show, dry run, the docs' commands):
README's main command on a bounded subset with low simulated accuracy, then an export."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from reasonmed.db.engine import make_engine
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS

LIMIT = 16


@dataclass
class FinishedRun:
    folder: Path
    url: str
    engine: Engine
    run_stdout: str

    def cli(self, *args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONMED_", "PREFECT_API"))}
        env.update(
            PREFECT_HOME=str(self.folder / "prefect"), COLUMNS=str(columns), REASONMED_DATABASE_URL=self.url
        )
        return subprocess.run(
            [sys.executable, "-m", "reasonmed", *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    folder = tmp_path_factory.mktemp("finished")
    url = f"sqlite:///{folder / 'reasonmed.db'}"
    run = FinishedRun(folder, url, make_engine(url), "")
    # Low simulated accuracy: easy, medium and difficult questions, refinements and rejections all occur.
    out = run.cli(
        "run",
        str(PUBMEDQA_FILE),
        "--format",
        "pubmedqa",
        "--benchmark-test-ids",
        str(PUBMEDQA_TEST_IDS),
        "--limit",
        str(LIMIT),
        "--sim-latency-ms",
        "1",
        "--sim-accuracy",
        "0.4",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exported = run.cli("export", "--out", str(folder / "exports"), "--format", "jsonl", "--allow-simulated")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    run.run_stdout = out.stdout
    yield run
    run.engine.dispose()
