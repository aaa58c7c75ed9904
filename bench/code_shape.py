"""The shape of the code: the longest functions and files, and import cycles among the project's modules.

    python bench/code_shape.py [ROOT]     # ROOT: a checkout (default: this one)

Counts lines of ``reasonmed/`` (flows/ and tasks/ through their links), a function's lines from its
``def`` to its last line. An import cycle is a strongly connected group of modules importing each other at
module level (imports inside functions are loaded late and cannot deadlock an import; they are listed apart).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file; flows/, tasks/ and migrations/ under the names their links give them."""
    out: dict[str, Path] = {}
    for folder, prefix in (("reasonmed", ()), ("flows", ("reasonmed",)), ("tasks", ("reasonmed",))):
        base = root / folder
        for path in sorted(base.rglob("*.py")):  # rglob does not follow the links, so each file once
            parts = [*prefix, folder, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(path: Path, names: set[str], *, top_level_only: bool, tree: ast.Module | None = None) -> set[str]:
    tree = tree if tree is not None else ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            base = node.module
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in names else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif top_level_only and isinstance(
            node, ast.If
        ):  # `if TYPE_CHECKING:` blocks are not imports at run time
            continue
    return {m for m in found if m in names}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def longest_functions(mods: dict[str, Path], n: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                found.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(found, reverse=True)[:n]


def main(root: Path) -> None:
    mods = modules(root)
    names = set(mods)
    print(f"== {root}: {len(mods)} modules")
    print("ten longest functions:")
    for lines, name in longest_functions(mods, 10):
        print(f"  {lines:5}  {name}")
    print("ten longest files:")
    sizes = sorted(
        ((len(p.read_text(encoding="utf-8").splitlines()), n) for n, p in mods.items()), reverse=True
    )
    for lines, name in sizes[:10]:
        print(f"  {lines:5}  {name}")
    for label, top in (("module-level", True), ("any (imports inside functions included)", False)):
        graph = {m: imports(p, names, top_level_only=top) - {m} for m, p in mods.items()}
        found = cycles(graph)
        print(f"import cycles, {label}: {len(found)}")
        for group in found:
            print("  " + " <-> ".join(group[:8]) + (" ..." if len(group) > 8 else ""))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
