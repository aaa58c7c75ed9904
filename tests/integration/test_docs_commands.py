"""Every `reasonmed` command in the docs' fenced blocks is a valid command line for the current CLI, and
every one that runs offline runs: on a finished simulated run, from a folder holding the bundled data.

Commands that need a GPU server, S3 or a judge (eval, score, s3:// exports) are parsed only; README's
main command is run from a fresh clone by tests/integration/test_fresh_clone.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from reasonmed.cli import app
from tests.fixtures_finished import FinishedRun

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "README.md",
    REPO / "deploy" / "README.md",
    REPO / "data" / "pubmedqa" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
# Placeholders in the docs and the value a parse check gives them.
PLACEHOLDERS = {"S": "0", "N": "1", "NAME": "x", "V": "1"}
# What needs a server, S3 or a judge model: parsed, not run.
NOT_OFFLINE = ("eval", "score", "serve", "sim-server")


def documented_commands() -> list[tuple[str, str]]:
    """(doc file, command line) for each `reasonmed ...` line of a fenced block, continuations joined."""
    found = []
    for doc in DOCS:
        for body in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), re.S):
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith("reasonmed "):
                    found.append((str(doc.relative_to(REPO)), line))
    return found


def argv(line: str) -> list[str]:
    """The command's arguments: comments, optional [...] groups and `...` dropped, placeholders filled."""
    line = re.sub(r"\[[^\]]*\]", " ", line)
    words = shlex.split(line, comments=True)[1:]
    return [PLACEHOLDERS.get(w, w) for w in words if w != "..."]


COMMANDS = documented_commands()


def test_the_docs_have_commands() -> None:
    assert len(COMMANDS) >= 15
    assert any(doc == "README.md" and line.startswith("reasonmed run data/") for doc, line in COMMANDS)


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}:{line[:50]}" for d, line in COMMANDS])
def test_documented_command_parses(doc: str, line: str) -> None:
    group = typer.main.get_command(app)
    args = argv(line)
    ctx = group.make_context("reasonmed", list(args), resilient_parsing=False)
    # Walk down the subcommands, letting click parse every option and argument of the last one.
    command = group
    while hasattr(command, "get_command") and _rest(ctx):  # a group (typer vendors its own click)
        name, *rest = _rest(ctx)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{doc}: `{line}`: no command {name!r}"
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
        command = sub


def _rest(ctx: Any) -> list[str]:
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def _offline(line: str) -> bool:
    args = argv(line)
    return (
        args[0] not in NOT_OFFLINE
        and "s3://" not in line
        and not (args[0] == "run" and "--dry-run" not in args)
        and not any(a.startswith(("medqa/", "medmcqa/", "mmlu/")) for a in args)
        and "pipeline.paper.yaml" not in line
        and "--ping" not in args  # asks the servers the file names
        and args[:2] != ["db", "create-audit-role"]  # needs a Postgres superuser (test_audit_role.py runs it)
        and not any(a.startswith("postgresql://") for a in args)
    )


RUNNABLE = [(d, line) for d, line in COMMANDS if _offline(line)]


@pytest.mark.slow
def test_documented_offline_commands_run(finished: FinishedRun, tmp_path: Path) -> None:
    """Each runs in a folder holding the bundled data and deploy files (as in a clone), on the finished run's database."""
    assert len(RUNNABLE) >= 10
    work = tmp_path / "clone-like"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")
    (work / "deploy").symlink_to(REPO / "deploy")
    finished_folder = finished.folder
    finished.folder = work
    try:
        for doc, line in RUNNABLE:
            args = argv(line)
            if args[0] == "export" and "--allow-simulated" not in args:
                args.append(
                    "--allow-simulated"
                )  # the finished run is the simulator's: its rows export only when allowed
            out = finished.cli(*args)
            assert out.returncode == 0, f"{doc}: `{line}`\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
            assert "Traceback" not in out.stdout + out.stderr, f"{doc}: `{line}`"
    finally:
        finished.folder = finished_folder


def test_the_cli_names_readme_main_command() -> None:
    """`reasonmed --help` and the empty-database hint quote the README's main command word for word."""
    from reasonmed.jobs.startup import MAIN_COMMAND

    assert f"\n{MAIN_COMMAND}\n" in (REPO / "README.md").read_text()
