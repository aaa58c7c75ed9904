"""Optional packages (the [s3] and [report] extras): when one is absent, the feature that needs it fails
with one line naming the extra to install, and the rest of the package still imports and works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reasonmed.cli.errors import explain
from reasonmed.export.targets import S3Target
from reasonmed.extras import MissingExtra, require
from reasonmed.mistake import MISTAKE_EXIT
from reasonmed.nightly.inputs import _s3_client
from reasonmed.report.data import ReportData
from reasonmed.report.figures import tier_distribution


def _absent(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` fail as it does when the package is not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_s3_export_without_boto3_names_the_s3_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, "boto3")
    with pytest.raises(MissingExtra, match=r"pip install 'reasonmed\[s3\]'"):
        _ = S3Target(bucket="b").client
    with pytest.raises(MissingExtra, match=r"reasonmed\[s3\]"):
        _s3_client(None)


def test_report_figures_without_matplotlib_name_the_report_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, "matplotlib", "matplotlib.figure")
    data = ReportData(
        tiers=[],
        tier_by_run=[],
        accuracy=[],
        refinement=[],
        rejected_questions={},
        tokens=[],
        token_usage=[],
        word_counts=[],
    )
    with pytest.raises(MissingExtra, match=r"pip install 'reasonmed\[report\]'"):
        tier_distribution(data)


def test_the_cli_prints_the_missing_extra_as_one_line() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("reasonmed_no_such_package.sub", "s3")
    explained = explain(caught.value)
    assert explained is not None
    assert explained.exit_code == MISTAKE_EXIT
    assert explained.line.startswith("error: reasonmed_no_such_package is not installed")
    assert "\n" not in explained.line


def test_a_missing_dependency_inside_an_installed_package_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pkg_with_broken_dep.py").write_text("import reasonmed_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("pkg_with_broken_dep", "report")
    assert not isinstance(caught.value, MissingExtra)


def test_installed_extras_load() -> None:
    """The [dev] install pulls both extras, so the suite exercises S3 and the report for real."""
    assert require("boto3", "s3").__name__ == "boto3"
    assert require("matplotlib.figure", "report").__name__ == "matplotlib.figure"


def test_the_base_install_imports_without_either_extra() -> None:
    """Every command module and flow imports with boto3 and matplotlib absent (in a fresh interpreter)."""
    code = (
        "import sys\n"
        "for name in ('boto3', 'botocore', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
        "import reasonmed.cli, reasonmed.api, reasonmed.flows.export, reasonmed.flows.report, reasonmed.flows.nightly\n"
        "print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("imported")
