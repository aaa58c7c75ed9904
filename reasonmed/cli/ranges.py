"""Every integer a user types is checked against the range the code and the database can hold.

Python's integers have no bound, SQLite's and Postgres' BIGINT do: ``show 99999999999999999999999`` used
to end in an OverflowError traceback from the driver. Each integer option, argument and ``--where`` value
goes through ``check`` (options and arguments through the ``in_range`` callback), which turns a value out
of range into one line saying the range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from reasonmed.mistake import Mistake

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1  # BIGINT in Postgres, INTEGER in SQLite: the widest integer a row holds


def check(name: str, value: int, low: int = 1, high: int = INT64_MAX) -> int:
    """``value``, or a Mistake naming ``name`` and the range when it is outside ``low``..``high``."""
    if not low <= value <= high:
        shown = f"{name}{value}" if name.endswith("=") else f"{name} {value}"
        raise Mistake(f"{shown} is out of range (expected {low:,} to {high:,})")
    return value


def in_range(low: int = 1, high: int = INT64_MAX) -> Callable[..., Any]:
    """A Typer callback checking an integer option or argument (or each of a repeated one)."""

    def callback(param: typer.CallbackParam, value: Any) -> Any:
        name = param.opts[0] if param.param_type_name == "option" else (param.metavar or str(param.name))
        for v in value if isinstance(value, list | tuple) else (value,):
            if v is not None:
                check(name, v, low, high)
        return value

    return callback
