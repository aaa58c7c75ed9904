"""A newcomer's first command: clone the repository into an empty folder (nothing beside it), install it
and run README's main command on a bounded subset. Everything it needs must be in the repository.

The clone gets its own virtualenv and ``pip install -e .`` of itself; the third-party dependencies are
reused from the running environment (a ``.pth`` line) instead of downloaded again, so the test stays
offline and fast while the project itself (code, data, migrations, entry point) comes only from the clone.
"""

from __future__ import annotations

import os
import re
import shlex
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
LIMIT = "8"


def readme_main_command() -> list[str]:
    """The first `reasonmed run ...` line of the README's fenced bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    for line in (ln.strip() for block in blocks for ln in block.splitlines()):
        if line.startswith("reasonmed run "):
            return shlex.split(line)
    raise AssertionError("README.md has no `reasonmed run` command in a ```bash block")


@pytest.mark.slow
def test_fresh_clone_runs_the_readme_main_command(tmp_path: Path) -> None:
    started = time.monotonic()
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "reasonmed-pipeline"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120
    )
    assert sorted(p.name for p in empty.iterdir()) == ["reasonmed-pipeline"]  # nothing beside it
    assert (clone / "data" / "pubmedqa" / "ori_pqal.json").is_file() and (
        clone / "data" / "pubmedqa" / "LICENSE"
    ).is_file()

    venv = empty / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (venv_site / "_reasonmed_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    where = subprocess.run(
        [str(py), "-c", "import reasonmed, reasonmed.migrations as m; print(reasonmed.__file__, m.__file__)"],
        cwd=empty,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.count(str(clone)) == 2, where  # the clone's code and migrations, not the checkout under test

    command = readme_main_command()
    assert command[:2] == ["reasonmed", "run"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REASONMED_", "PREFECT_API", "PREFECT_SERVER_LOGGING", "PREFECT_LOGGING"))
    }
    env.update(PREFECT_HOME=str(empty / "prefect-home"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    out = subprocess.run(
        [str(venv / "bin" / "reasonmed"), *command[1:], "--limit", LIMIT, "--sim-latency-ms", "1"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stdout + out.stderr
    db = clone / "reasonmed-sim.db"  # the simulator's work has a database of its own
    assert f"new database {db.resolve()}: created and migrated" in out.stdout
    assert "questions by tier and status" in out.stdout and f"database: {db.resolve()}" in out.stdout
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        assert c.execute(text("select count(*) from questions")).scalar_one() == 1000
        assert c.execute(text("select count(*) from questions where is_benchmark_test")).scalar_one() == 500
        assert c.execute(
            text("select count(*) from question_outcomes where status in ('accepted','rejected')")
        ).scalar_one() == int(LIMIT)
    engine.dispose()
    print(
        f"fresh clone -> install -> README main command (--limit {LIMIT}): {time.monotonic() - started:.0f} s"
    )
