"""House rules that a reviewer should not have to check by eye: context is passed, not parked.

No module of ``reasonmed/``, ``flows/`` or ``tasks/`` keeps a mutable registry at module level (a name
bound to ``{}``, ``[]``, ``dict()``, ``set()``... that the module then fills or empties, or any ``global``
statement), and none writes ``os.environ`` to carry a value. The rules are checked on the syntax tree,
so a comment or a string that mentions them does not count and a renamed variable does not escape.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.source_trees import tree_of

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("reasonmed", "flows", "tasks")

_MUTABLE_CALLS = {
    "dict",
    "list",
    "set",
    "defaultdict",
    "OrderedDict",
    "Counter",
    "deque",
    "WeakValueDictionary",
}
_MUTATORS = {
    "append",
    "add",
    "clear",
    "discard",
    "extend",
    "insert",
    "pop",
    "popitem",
    "remove",
    "setdefault",
    "update",
}
_ENV_MUTATORS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}

# Prefect reads its telemetry switch (DO_NOT_TRACK) and its server-analytics default from the process
# environment only, in background threads and before any settings context exists; these defaults keep
# the machine offline and yield to the user's own setting (setdefault). Nothing else may write it.
ALLOWED_ENV_WRITES = {("reasonmed/privacy.py", "apply_offline_defaults")}


def _is_mutable_value(node: ast.expr | None) -> bool:
    if isinstance(node, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(node, ast.Call):
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        return name in _MUTABLE_CALLS
    return False


def _module_mutables(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and _is_mutable_value(stmt.value):
            names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(stmt, ast.AnnAssign)
            and _is_mutable_value(stmt.value)
            and isinstance(stmt.target, ast.Name)
        ):
            names.add(stmt.target.id)
    return names


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or a bare ``environ`` (``from os import environ``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """Line -> name of the top-level function it belongs to."""
    owner: dict[int, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            for line in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1):
                owner[line] = stmt.name
    return owner


def _registry_name(node: ast.expr, mutables: set[str]) -> str | None:
    """``NAME`` or ``module.NAME`` when NAME is bound to a mutable value at some module's top level."""
    if isinstance(node, ast.Name) and node.id in mutables:
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in mutables and isinstance(node.value, ast.Name):
        return node.attr
    return None


def violations(sources: dict[str, str]) -> list[str]:
    """Every breach of the two rules in these modules (path -> source), as ``path:line: what``.

    A registry is often filled from another module than its own (``from reasonmed.tasks.pipeline import RUNTIMES``
    then ``RUNTIMES[key] = ...`` in a flow), so the module-level names of every module are looked for in all.
    """
    trees = {path: tree_of(source) for path, source in sources.items()}
    mutables = set().union(*(_module_mutables(t) for t in trees.values()))
    return [v for path, tree in trees.items() for v in _module_violations(tree, path, mutables)]


def _module_violations(tree: ast.Module, path: str, mutables: set[str]) -> list[str]:
    owner = _enclosing_functions(tree)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{path}:{getattr(node, 'lineno', 0)}: {what}")

    def env_write(node: ast.AST, what: str) -> None:
        if (path, owner.get(getattr(node, "lineno", 0), "")) not in ALLOWED_ENV_WRITES:
            report(node, what)

    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            report(node, f"global statement ({', '.join(node.names)})")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript) and _is_environ(t.value):
                    env_write(node, "os.environ item written")
                elif isinstance(t, ast.Subscript) and (name := _registry_name(t.value, mutables)):
                    report(node, f"module-level registry {name} written")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            fn = node.func
            if _is_environ(fn.value) and fn.attr in _ENV_MUTATORS:
                env_write(node, f"os.environ.{fn.attr}")
            elif isinstance(fn.value, ast.Name) and fn.value.id == "os" and fn.attr in ("putenv", "unsetenv"):
                env_write(node, f"os.{fn.attr}")
            elif fn.attr in _MUTATORS and (name := _registry_name(fn.value, mutables)):
                report(node, f"module-level registry {name}.{fn.attr}")
    return found


def _modules() -> list[Path]:
    """Each module once, by its own path (reasonmed/flows and reasonmed/tasks link to the top-level folders)."""
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if p.resolve() == p)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "RUNTIMES: dict[str, object] = {}\ndef f(k, v):\n    RUNTIMES[k] = v\n",
            "registry RUNTIMES written",
        ),
        ("_RUNS = dict()\ndef f(k):\n    _RUNS.pop(k, None)\n", "registry _RUNS.pop"),
        ("SEEN = set()\ndef f(x):\n    SEEN.add(x)\n", "registry SEEN.add"),
        (
            "_current = None\ndef set_current(p):\n    global _current\n    _current = p\n",
            "global statement (_current)",
        ),
        ("import os\nos.environ['REASONMED_DATABASE_URL'] = 'x'\n", "os.environ item written"),
        ("import os\ndef f():\n    os.environ.setdefault('A', '1')\n", "os.environ.setdefault"),
        ("import os\nos.environ.update(A='1')\n", "os.environ.update"),
        ("import os\nos.environ.pop('A', None)\n", "os.environ.pop"),
        ("from os import environ\nenviron['A'] = '1'\n", "os.environ item written"),
        ("import os\nos.putenv('A', '1')\n", "os.putenv"),
        ("import os\ndel os.environ['A']\n", "os.environ item written"),
    ],
)
def test_each_breach_is_caught(source: str, expected: str) -> None:
    found = violations({"<module>": source})
    assert len(found) == 1 and found[0].endswith(expected), found


@pytest.mark.parametrize(
    "source",
    [
        "NAMES = {'a': 1}\ndef f():\n    return NAMES['a']\n",  # a constant table, read only
        "import os\ndef f():\n    w = dict(os.environ)\n    w['B'] = os.environ.get('A')\n    return w\n",  # a copy for a child
        "def f():\n    cache = {}\n    cache['x'] = 1\n    return cache\n",  # local state
        "import contextvars\ncurrent = contextvars.ContextVar('c', default=None)\n",  # a context, set and reset by its users
    ],
)
def test_what_is_allowed_is_not_flagged(source: str) -> None:
    assert violations({"<module>": source}) == []


def test_a_registry_filled_from_another_module_is_caught() -> None:
    found = violations(
        {
            "tasks/pipeline.py": "RUNTIMES: dict[str, object] = {}\n",
            "flows/build.py": "from reasonmed.tasks.pipeline import RUNTIMES\nimport reasonmed.tasks.pipeline as tp\n"
            "def f(k, v):\n    RUNTIMES[k] = v\n    tp.RUNTIMES.pop(k)\n",
        }
    )
    assert found == [
        "flows/build.py:4: module-level registry RUNTIMES written",
        "flows/build.py:5: module-level registry RUNTIMES.pop",
    ]


def test_no_module_registry_and_no_environ_write() -> None:
    found = violations({str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in _modules()})
    assert found == [], "\n".join(found)


def test_the_allowed_environ_writes_are_still_needed() -> None:
    """An exception to a rule that nothing uses any more is removed, not kept."""
    for path, function in ALLOWED_ENV_WRITES:
        source = (REPO / path).read_text(encoding="utf-8")
        tree = ast.parse(source)
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
        writes = [
            n
            for n in ast.walk(fn)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and _is_environ(n.func.value)
            and n.func.attr in _ENV_MUTATORS
        ]
        assert writes, f"{path}:{function} no longer writes os.environ: drop it from ALLOWED_ENV_WRITES"
        assert all(w.func.attr == "setdefault" for w in writes), (
            "only defaults the user's own setting overrides"
        )
