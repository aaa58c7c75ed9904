"""The terminal view of ``reasonmed run --dry-run`` (the estimate itself: ``reasonmed.pipeline.estimate``)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from reasonmed.cli.safe_text import safe_text
from reasonmed.pipeline.estimate import RunEstimate
from reasonmed.pipeline.replica_plan import ReplicaPlan


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _money(usd: float | None) -> str:
    return "-" if usd is None else f"${usd:,.2f}"


def print_estimate(est: RunEstimate, console: Console) -> None:
    basis = (
        f"history of {est.finished_history:,} finished question(s)"
        if est.finished_history
        else "the pipeline file's limits (upper bounds: no finished question yet)"
    )
    t = Table(
        title=f"dry run: {est.pending:,} pending question(s); figures from {basis}", title_justify="left"
    )
    for col, right in (
        ("stage", False),
        ("endpoint", False),
        ("basis", False),
        ("calls/q", True),
        ("calls", True),
        ("tokens in", True),
        ("tokens out", True),
        ("busy", True),
        ("cost", True),
    ):
        t.add_column(col, justify="right" if right else "left", overflow="fold")
    for s in est.stages:
        t.add_row(
            s.role,
            safe_text(s.endpoint),  # a name from the pipeline file
            s.basis,
            f"{s.calls_per_question:g}",
            f"{s.calls:,}",
            f"{s.prompt_tokens:,}",
            f"{s.completion_tokens:,}",
            _duration(s.busy_s),
            _money(s.cost_usd),
        )
    console.print(t)
    console.print(safe_text(f"total: {est.calls:,} calls, {est.tokens:,} tokens"))
    console.print(
        "wall time at the configured caps (max_in_flight per endpoint): "
        + (
            f"~{_duration(est.wall_s)}"
            if est.wall_s is not None
            else "unknown until a run has stored latencies"
        ),
        markup=False,
    )
    console.print(
        "cost: "
        + (
            _money(est.cost_usd)
            if est.cost_usd is not None
            else "no prices in the pipeline file (price_input_per_mtok, price_output_per_mtok "
            "per endpoint, $ per million tokens)"
        ),
        markup=False,
    )
    batch = sorted({s.endpoint for s in est.stages if s.batch_price_factor is not None})
    if batch and est.cost_usd is not None and est.interactive_cost_usd is not None:
        console.print(
            safe_text(
                f"batch price (mode batch: {', '.join(batch)}): {_money(est.cost_usd)} in all, against "
                f"{_money(est.interactive_cost_usd)} with every request sent interactively"
            ),
            markup=False,
        )
    console.print("dry run: nothing was claimed, called or written", markup=False)


def print_replica_plan(plan: ReplicaPlan, console: Console) -> None:
    t = Table(
        title=f"replicas for {plan.nodes} node(s) x {plan.replicas_per_node}, by {plan.basis} per endpoint "
        "(each endpoint's replicas: `replicas:` in the pipeline file, deploy/README.md)",
        title_justify="left",
    )
    for col in ("endpoint", "model", "work share", "replicas", "finishes at"):
        t.add_column(col, justify="left" if col in ("endpoint", "model") else "right", overflow="fold")
    total = sum(e.work for e in plan.endpoints) or 1.0
    for e in plan.endpoints:
        t.add_row(
            safe_text(e.endpoint),
            safe_text(e.model),
            f"{e.work / total:.0%}",
            str(e.replicas),
            f"{plan.finish(e):.0%} of the run",
        )
    console.print(t)
