"""Per-item task results gathered with ``return_exceptions=True``: what finished, and what did not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger

if TYPE_CHECKING:
    from reasonmed.flows.run import RunContext


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


async def gather_items(
    run: RunContext, key: str, names: Sequence[str], task: Callable[[str], Awaitable[Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """One task per item, all at once; an item that failed for good fails the run (the others' results
    stand), and both go into the run's stats under ``key`` and "failures"."""
    results = await asyncio.gather(*(task(name) for name in names), return_exceptions=True)
    done, failed = split_results(names, results)
    for name, why in failed.items():
        get_run_logger().warning("%s incomplete: %s", name, why)
    run.stats.update({key: done, "failures": failed})
    if failed:
        run.end("failed", "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return done, failed
