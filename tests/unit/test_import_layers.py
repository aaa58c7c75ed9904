"""The layers import downwards only: ``reasonmed/db`` owns the SQL and imports nothing above it, and the
domain (``reasonmed/``) does not import Prefect. Checked on the syntax tree of every module, imports inside
functions included, so a late import does not escape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What reasonmed/db may import of the project: itself and the small modules below everything.
ABOVE_DB = (
    "reasonmed.agents",
    "reasonmed.api",
    "reasonmed.cli",
    "reasonmed.evaluation",
    "reasonmed.export",
    "reasonmed.flows",
    "reasonmed.ingest",
    "reasonmed.llm",
    "reasonmed.nightly",
    "reasonmed.pipeline",
    "reasonmed.report",
    "reasonmed.sim",
    "reasonmed.tasks",
    "flows",
    "tasks",
)


def imported(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, wherever it stands."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


def offending(source: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{line}: {module}"
        for line, module in imported(source)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from reasonmed.pipeline.failures import sets_aside\n", ["1: reasonmed.pipeline.failures"]),
        ("def f():\n    from reasonmed.agents import base\n", ["2: reasonmed.agents"]),
        ("import reasonmed.llm.types as t\n", ["1: reasonmed.llm.types"]),
        ("from reasonmed.db.models import Question\nfrom reasonmed.attempts import StageFailure\n", []),
        ("from reasonmed.pipelines_other import x\n", []),  # a prefix of a name is not the package
    ],
)
def test_the_check_finds_what_it_should(source: str, found: list[str]) -> None:
    assert offending(source, ABOVE_DB) == found


def test_db_imports_nothing_above_it() -> None:
    found = [
        f"{path.relative_to(REPO)}:{hit}"
        for path in sorted((REPO / "reasonmed" / "db").glob("*.py"))
        for hit in offending(path.read_text(encoding="utf-8"), ABOVE_DB)
    ]
    assert found == [], "\n".join(found)


def test_the_domain_does_not_import_prefect() -> None:
    # The layers that run flows: the flows and tasks themselves, the jobs that start them, the CLI.
    allowed = ("reasonmed/flows", "reasonmed/tasks", "reasonmed/jobs", "reasonmed/cli", "reasonmed/deploy")
    found = [
        f"{path.relative_to(REPO)}:{hit}"
        for path in sorted((REPO / "reasonmed").rglob("*.py"))
        if not str(path.relative_to(REPO)).startswith(allowed)
        for hit in offending(path.read_text(encoding="utf-8"), ("prefect",))
    ]
    assert found == [], "\n".join(found)


# The top-level folders are the project's layout; the package reaches them as reasonmed.flows, reasonmed.tasks,
# reasonmed.migrations (links). Importing them as ``flows`` or ``tasks`` too would load each module twice under
# two names: two Prefect flow objects, two copies of every module-level constant.
TOP_LEVEL_FOLDERS = ("flows", "tasks", "migrations", "deploy")


def _python_sources() -> list[Path]:
    roots = [REPO / d for d in ("reasonmed", "flows", "tasks", "migrations", "tests", "bench")]
    return sorted(p for root in roots for p in root.rglob("*.py") if ".venv" not in p.parts)


def _string_scripts(source: str) -> list[str]:
    """String constants that look like Python run in a child process (``python -c`` scripts in tests)."""
    return [
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "import" in n.value
    ]


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from flows.build import build_dataset\n", ["1: flows.build"]),
        ("import tasks.pipeline as tp\n", ["1: tasks.pipeline"]),
        ("from reasonmed.flows.build import build_dataset\n", []),
        ("script = 'import asyncio\\nfrom flows.build import build_dataset\\n'\n", ["script: flows.build"]),
        ("script = f'import asyncio\\nfrom tasks.x import y\\nrun(**{p!r})\\n'\n", ["script: tasks.x"]),
    ],
)
def test_the_top_level_check_finds_what_it_should(source: str, found: list[str]) -> None:
    assert _top_level_imports(source) == found


def _top_level_imports(source: str) -> list[str]:
    hits = offending(source, TOP_LEVEL_FOLDERS)
    for script in _string_scripts(source):
        for line in script.splitlines():  # line by line: an f-string's pieces are not whole scripts
            try:
                modules = [m for _n, m in imported(line.strip())]
            except SyntaxError:
                continue  # prose that mentions "import", not a statement
            hits += [f"script: {m}" for m in modules if m.split(".")[0] in TOP_LEVEL_FOLDERS]
    return hits


def test_nothing_imports_the_top_level_folders_as_packages() -> None:
    found = [
        f"{path.relative_to(REPO)}:{hit}"
        for path in _python_sources()
        if path.name != "test_import_layers.py"  # its own examples
        for hit in _top_level_imports(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "\n".join(found)
