"""Each source text parsed once per test session: the house-rule, import-layer and cycle checks all read the
same few hundred files of the repository, and parsing them is most of those checks' time."""

from __future__ import annotations

import ast
import functools


@functools.cache
def tree_of(source: str) -> ast.Module:
    """The syntax tree of ``source``; the checks only read it, so one tree serves them all."""
    return ast.parse(source)
