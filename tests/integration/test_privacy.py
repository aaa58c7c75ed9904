"""Medical text stays on the machine: the shipped settings turn Prefect's analytics and telemetry off,
checked in fresh processes with none of the variables set, as a user's shell would start them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OFF = ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED")


def _python(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in OFF}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def test_pyproject_turns_server_analytics_off_for_commands_run_from_the_repository(tmp_path: Path) -> None:
    code = "import prefect.settings as s; print(s.get_current_settings().server.analytics_enabled)"
    assert _python(code, REPO) == "False"  # `prefect server start` from the root reads [tool.prefect.server]
    assert (
        _python(code, tmp_path) == "True"
    )  # elsewhere Prefect's default would apply: why the CLI sets it too


def test_every_entry_point_sets_the_offline_defaults(tmp_path: Path) -> None:
    for module in (
        "reasonmed.cli",
        "reasonmed.flows.build",
        "reasonmed.flows.nightly",
        "reasonmed.flows.deployments",
    ):
        code = (
            f"import {module}, os; import prefect.settings as s; "
            "print(os.environ.get('DO_NOT_TRACK'), s.get_current_settings().server.analytics_enabled)"
        )
        assert _python(f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}", tmp_path) == "1 False", (
            module
        )


def test_the_example_environment_file_keeps_them_off() -> None:
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1].strip()
        for line in (REPO / "deploy" / "reasonmed.env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert lines.get("DO_NOT_TRACK") == "1" and lines.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false"
