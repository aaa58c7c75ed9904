"""One namespace: the repository's top-level folders install under ``reasonmed.*`` and nothing else.

A generic top-level ``flows``, ``tasks`` or ``migrations`` in site-packages would shadow, or be shadowed
by, another project's package of the same name; these tests build the real wheel and run the CLI from a
folder that has its own ``migrations/`` and ``tasks/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINKED = ("flows", "tasks", "migrations", "deploy")  # top-level folders, installed as reasonmed.<name>


def test_the_top_level_folders_are_reached_through_links_inside_the_package() -> None:
    for name in LINKED:
        link = REPO / "reasonmed" / name
        assert link.is_symlink() and link.resolve() == (REPO / name).resolve(), f"reasonmed/{name}"
        assert (REPO / name / "__init__.py").exists()
    assert (
        "reasonmed*"
        in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
            "include"
        ]
    )


def test_no_module_imports_the_top_level_folders_by_their_bare_names() -> None:
    bare = re.compile(
        r"^\s*(from|import) (flows|tasks|migrations)\b"  # an import statement
        r"|import_module\(\s*[\"'](flows|tasks|migrations)\.",  # or the same by importlib
        re.MULTILINE,
    )
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("reasonmed", "flows", "tasks", "migrations", "tests", "bench", "deploy")
        for p in (REPO / folder).rglob("*.py")
        if bare.search(p.read_text())
    ]
    assert offenders == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("reasonmed-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_only_the_reasonmed_namespace_with_its_data(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names} - {"reasonmed"} == {
        n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")
    }
    for expected in (
        "reasonmed/flows/build.py",
        "reasonmed/flows/nightly.py",
        "reasonmed/tasks/pipeline.py",
        "reasonmed/migrations/env.py",
        "reasonmed/migrations/script.py.mako",
        "reasonmed/migrations/versions/0001_initial_schema.py",
        "reasonmed/deploy/prefect.yaml",
        "reasonmed/prompts/generate.txt",
        "reasonmed/py.typed",
    ):
        assert expected in names, expected
    versions = {Path(n).name for n in names if n.startswith("reasonmed/migrations/versions/")}
    assert versions == {p.name for p in (REPO / "migrations" / "versions").glob("*.py")}


def test_the_cli_works_from_a_folder_with_its_own_migrations_and_tasks(tmp_path: Path) -> None:
    for name in ("migrations", "tasks", "flows"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('another project')\n")
    db = tmp_path / "x.db"
    upgraded = subprocess.run(
        [sys.executable, "-m", "reasonmed", "db", "upgrade", "--database-url", f"sqlite:///{db}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    current = subprocess.run(
        [sys.executable, "-m", "reasonmed", "db", "current", "--database-url", f"sqlite:///{db}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert current.returncode == 0, current.stderr[-2000:]
    head = sorted(p.name for p in (REPO / "migrations" / "versions").glob("0*.py"))[-1].split("_")[0]
    assert head in current.stdout
    flows = subprocess.run(
        [sys.executable, "-c", "import reasonmed.flows.build, reasonmed.tasks.pipeline; print('ok')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert flows.stdout.strip() == "ok", flows.stderr[-2000:]
