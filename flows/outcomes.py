"""Per-item task results gathered with ``return_exceptions=True``: what finished, and what did not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def split_results(names: Sequence[str], results: Sequence[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> result, name -> error) for the items that finished and those that failed for good.

    A cancellation or interrupt (BaseException but not Exception) is re-raised: it ends the flow.
    """
    done: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, res in zip(names, results, strict=True):
        if isinstance(res, BaseException):
            if not isinstance(res, Exception):
                raise res
            failed[name] = f"{type(res).__name__}: {res}"
        else:
            done[name] = res
    return done, failed
