"""The layers import downwards only: ``reasonmed/db`` owns the SQL and imports nothing above it, the plain
records below both db and the pipeline import neither, and the domain (``reasonmed/``) does not import
Prefect. Checked on the syntax tree of every module, imports inside functions included, so a late import
does not escape. Also: ``reasonmed/db`` stays in modules small enough to hold one job each."""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

from tests.unit.source_trees import tree_of

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

# The plain records both reasonmed/db and the pipeline use: below both, so they import only the standard
# library and each other (and the prompt helpers a question view renders with), never SQLAlchemy.
BELOW_BOTH = ("attempts", "question_state", "question_view", "stage_records")
BELOW_BOTH_MAY_IMPORT = (*(f"reasonmed.{m}" for m in BELOW_BOTH), "reasonmed.prompts")

# Lines a reasonmed/db module may have: past this, it holds more than one job. The schema (one declaration
# per table) is exempt; eval_repo.py is over already (contamination, evaluation and dataset scores, the
# next to split) and may only shrink.
DB_MODULE_LINES = 450
DB_MODULE_LINES_EXCEPT = {"models.py": None, "eval_repo.py": 470}


@functools.cache
def imported(source: str) -> tuple[tuple[int, str], ...]:
    """(line, module) of every import in ``source``, wherever it stands (several checks read each file)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree_of(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return tuple(out)


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


def outside(source: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of ``source`` that are neither the standard library nor one of ``allowed``."""
    return [
        f"{line}: {module}"
        for line, module in imported(source)
        if module not in allowed and module.split(".")[0] not in sys.stdlib_module_names
    ]


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from dataclasses import dataclass\nfrom reasonmed.stage_records import PathRecord\n", []),
        ("from reasonmed.db.models import Question\n", ["1: reasonmed.db.models"]),
        ("def f():\n    from reasonmed.pipeline import stages\n", ["2: reasonmed.pipeline"]),
        ("import sqlalchemy\n", ["1: sqlalchemy"]),
        ("from reasonmed.stage_records_old import x\n", ["1: reasonmed.stage_records_old"]),
    ],
)
def test_the_records_check_finds_what_it_should(source: str, found: list[str]) -> None:
    assert outside(source, BELOW_BOTH_MAY_IMPORT) == found


def test_the_records_below_db_and_pipeline_import_neither() -> None:
    found = [
        f"reasonmed/{name}.py:{hit}"
        for name in BELOW_BOTH
        for hit in outside(
            (REPO / "reasonmed" / f"{name}.py").read_text(encoding="utf-8"), BELOW_BOTH_MAY_IMPORT
        )
    ]
    assert found == [], "\n".join(found)


def test_db_modules_stay_small() -> None:
    too_long = []
    for path in sorted((REPO / "reasonmed" / "db").glob("*.py")):
        bound = DB_MODULE_LINES_EXCEPT.get(path.name, DB_MODULE_LINES)
        n = len(path.read_text(encoding="utf-8").splitlines())
        if bound is not None and n > bound:
            too_long.append(f"reasonmed/db/{path.name}: {n} lines (at most {bound})")
    assert too_long == [], "\n".join(too_long)


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
        for n in ast.walk(tree_of(source))
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
            if not line.lstrip().startswith(("import ", "from ")):
                continue
            try:
                modules = [m for _n, m in imported(line.strip())]
            except SyntaxError:
                continue  # prose that mentions "import", not a statement
            hits += [f"script: {m}" for m in modules if m.split(".")[0] in TOP_LEVEL_FOLDERS]
    return hits


# A file that never names a folder cannot import it, in its code or in a script it runs: only the others
# are parsed (a third of the sources).
_NAMES_A_FOLDER = re.compile(rf"\b(?:{'|'.join(TOP_LEVEL_FOLDERS)})\b")


def test_nothing_imports_the_top_level_folders_as_packages() -> None:
    sources = {path: path.read_text(encoding="utf-8") for path in _python_sources()}
    found = [
        f"{path.relative_to(REPO)}:{hit}"
        for path, source in sources.items()
        if path.name != "test_import_layers.py"  # its own examples
        and _NAMES_A_FOLDER.search(source)
        for hit in _top_level_imports(source)
    ]
    assert found == [], "\n".join(found)


def _code_shape():  # type: ignore[no-untyped-def]
    """bench/code_shape.py, the measure the closing notes quote, loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("code_shape", REPO / "bench" / "code_shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cycle_finder_finds_a_cycle() -> None:
    shape = _code_shape()
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert shape.cycles(graph) == [["a", "b", "c"]]
    assert shape.cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_not_even_through_late_imports() -> None:
    """A cycle through an import inside a function loads fine today and breaks the day someone hoists it."""
    shape = _code_shape()
    mods = shape.modules(REPO)
    names = set(mods)
    graph = {
        m: shape.imports(p, names, top_level_only=False, tree=tree_of(p.read_text(encoding="utf-8"))) - {m}
        for m, p in mods.items()
    }
    assert shape.cycles(graph) == []
