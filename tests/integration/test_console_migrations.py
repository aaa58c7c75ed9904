"""Every migration, up and down, run by the installed ``reasonmed`` console script as a user runs it: from a
folder outside the repository, with nothing on ``sys.path`` but what the install put there.

Under pytest the repository root is on ``sys.path`` (rootdir, PYTHONPATH), so a migration that imports a
sibling as ``migrations.versions.X`` works there and nowhere else; these tests take that away.

Which code runs: the console script of the running virtualenv imports ``reasonmed`` from wherever the
package is installed. In CI (a fresh clone, ``pip install -e .``) that is this checkout. A developer's
second worktree that shares the virtualenv of another checkout would run the other checkout's code; then,
and only then, a folder holding nothing but a link to this checkout's ``reasonmed`` package goes on
``PYTHONPATH`` (the repository root still is not importable). The probe below asserts, either way, that
the subprocess runs this checkout's package and cannot import a top-level ``migrations``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from sqlalchemy import inspect

from reasonmed.db import migrate
from reasonmed.db.engine import make_engine
from reasonmed.db.models import Base

REPO = Path(__file__).resolve().parents[2]
CONSOLE = Path(sysconfig.get_path("scripts")) / "reasonmed"
PROBE = (
    "import importlib.util, reasonmed, reasonmed.migrations as m; "
    "print(reasonmed.__file__); print(m.__file__); print(importlib.util.find_spec('migrations') is None)"
)


def _installed_env(outside: Path) -> tuple[dict[str, str], str]:
    """(environment, how the package is reached) for a subprocess that sees only the installed package."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "REASONMED_")) or k in ("PYTHONHASHSEED", "PYTHONIOENCODING")
    }
    if _probe(env, outside)[0].is_relative_to(REPO):
        return env, "installed"
    shim = outside / "site"
    shim.mkdir()
    (shim / "reasonmed").symlink_to(REPO / "reasonmed", target_is_directory=True)
    return {**env, "PYTHONPATH": str(shim)}, f"a link to this checkout's package ({shim})"


def _probe(env: dict[str, str], cwd: Path) -> tuple[Path, Path, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    package, migrations, no_top_level = out.stdout.split()
    return Path(package).resolve(), Path(migrations).resolve(), no_top_level == "True"


def _reasonmed(env: dict[str, str], cwd: Path, *args: str) -> str:
    out = subprocess.run([str(CONSOLE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"reasonmed {' '.join(args[:2])}: {out.stderr[-3000:]}"
    return out.stdout


def _tables(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        return set(inspect(eng).get_table_names()) - {"alembic_version"}
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def blank_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("empty_pg_url"))
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'reasonmed.db'}"


def test_every_migration_goes_up_and_down_through_the_installed_console_script(
    blank_url: str, tmp_path: Path
) -> None:
    assert CONSOLE.is_file(), f"no console script at {CONSOLE}: install the project (pip install -e .)"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert not outside.resolve().is_relative_to(REPO)
    env, reached = _installed_env(outside)
    package, migrations, no_top_level = _probe(env, outside)
    assert package.is_relative_to(REPO) and migrations.is_relative_to(REPO), (package, migrations, reached)
    assert no_top_level, f"a top-level `migrations` is importable ({reached}): the test would prove nothing"
    head = migrate.head_revision(blank_url)

    up = _reasonmed(env, outside, "db", "upgrade", "head", "--database-url", blank_url)
    assert f"is at revision {head}" in up
    down = _reasonmed(env, outside, "db", "downgrade", "base", "--database-url", blank_url)
    assert "is at revision base" in down
    assert _tables(blank_url) == set()
    again = _reasonmed(env, outside, "db", "upgrade", "head", "--database-url", blank_url)
    assert f"is at revision {head}" in again
    assert _tables(blank_url) >= {t.name for t in Base.metadata.sorted_tables}
