"""The "dataset-growth" report: what one night added, as markdown for a keyed Prefect artifact.

Published under one key every night, so the UI's artifact page shows the nights as versions of one
report; the same figures are returned by the flow and stored in the night's ``pipeline_runs.stats``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Growth:
    """Everything a night did, gathered by ``reasonmed.nightly.night.Night``."""

    nightly_run_id: int
    started_at: str
    parameters: dict[str, Any]
    before: dict[str, int]
    after: dict[str, int]
    ingest: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    finished: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    export: dict[str, Any] | None = None
    export_error: str | None = None
    build_error: str | None = None  # the build's verdict when it did not finish its work
    export_skipped: str | None = None  # why no version was exported although export was asked for

    def added(self, key: str) -> int:
        return self.after.get(key, 0) - self.before.get(key, 0)

    @property
    def changed_dataset(self) -> bool:
        """Whether the night left the dataset other than it found it: samples added, or questions
        accepted (again) since it started, e.g. re-judged ones whose count of samples did not move."""
        accepted_since = sum(
            int(t.get("questions", 0))
            for t in self.finished.get("tiers", [])
            if t.get("status") == "accepted"
        )
        return self.added("samples") != 0 or accepted_since > 0

    @property
    def tokens(self) -> dict[str, int]:
        p, c = int(self.build.get("prompt_tokens", 0)), int(self.build.get("completion_tokens", 0))
        return {"prompt": p, "completion": c, "total": p + c}

    @property
    def cost_usd(self) -> float | None:
        """What the night's calls cost at the pipeline file's prices (None: no price configured)."""
        value = self.build.get("cost_usd")
        return None if value is None else float(value)

    @property
    def cost_per_sample_usd(self) -> float | None:
        samples = self.added("samples")
        return None if self.cost_usd is None or samples <= 0 else self.cost_usd / samples

    def summary(self) -> dict[str, Any]:
        """The figures as plain data (flow result, run stats, tests)."""
        return {
            "questions_ingested": sum(int(f.get("inserted", 0)) for f in self.ingest),
            "questions_accepted": self.added("accepted"),
            "questions_rejected": self.added("rejected"),
            "samples_added": self.added("samples"),
            "questions_processed": int(self.build.get("done", 0)),
            "questions_claimed": int(self.build.get("claimed", 0)),
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "cost_per_sample_usd": self.cost_per_sample_usd,
            "token_budget_reached": bool(self.build.get("token_budget_reached", False)),
            "totals": self.after,
            "tiers": self.finished.get("tiers", []),
            "rejections": self.finished.get("rejections", []),
            "export_version": (self.export or {}).get("version"),
            "export_skipped": self.export_skipped,
        }

    @property
    def problem(self) -> str | None:
        """What makes the night's run row end failed: the export's error, else the build's verdict."""
        return self.export_error or self.build_error

    @property
    def failure(self) -> str | None:
        """What the night's flow run fails with, once its figures are recorded and published; None if it
        did all it was asked."""
        if self.export_error:
            return f"night {self.nightly_run_id}: the export failed ({self.export_error}); rerun the export deployment"
        if self.build_error:
            return f"night {self.nightly_run_id}: {self.build_error}"
        return None

    def headline(self) -> str:
        stats = self.summary()
        return f"Nightly growth: +{stats['samples_added']} samples, +{stats['questions_accepted']} questions"

    def log_line(self) -> str:
        stats = self.summary()
        return (
            f"night {self.nightly_run_id}: {stats['questions_accepted']} questions accepted, "
            f"{stats['questions_rejected']} rejected, {stats['samples_added']} samples added, "
            f"{stats['tokens']['total']} tokens; export version {stats['export_version']}"
        )

    def result(self) -> dict[str, Any]:
        """The nightly flow's result: the figures, the export's result and the ingested files."""
        return {
            "nightly_run_id": self.nightly_run_id,
            **self.summary(),
            "export": self.export,
            "ingest": self.ingest,
        }


def _n(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _usd(value: float | None) -> str:
    return "— (no prices in the pipeline file)" if value is None else f"${value:,.4f}"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], empty: str) -> str:
    if not rows:
        return f"_{empty}_"
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    return head + "\n".join("| " + " | ".join(_n(r.get(c)) for c in columns) + " |" for r in rows)


def _tier_mix(tiers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    mix: dict[str, dict[str, Any]] = {}
    for row in tiers:
        entry = mix.setdefault(row["tier"], {"tier": row["tier"], "accepted": 0, "rejected": 0, "samples": 0})
        entry[row["status"]] = entry.get(row["status"], 0) + int(row["questions"])
        entry["samples"] += int(row.get("samples") or 0)
    order = {"easy": 0, "medium": 1, "difficult": 2}
    return sorted(mix.values(), key=lambda r: order.get(r["tier"], 9))


def render_markdown(g: Growth) -> str:
    p = g.parameters
    t = g.tokens
    budget = (
        f"max questions **{_n(p.get('max_questions'))}**, max tokens **{_n(p.get('max_tokens'))}**, "
        f"priority **{p.get('priority')}**"
    )
    stopped = " — stopped by the token budget" if g.build.get("token_budget_reached") else ""
    lines = [
        f"# Dataset growth — {g.started_at}",
        "",
        "| | this night | total |",
        "|---|---:|---:|",
        f"| questions added (accepted) | {_n(g.added('accepted'))} | {_n(g.after.get('accepted'))} |",
        f"| samples added | {_n(g.added('samples'))} | {_n(g.after.get('samples'))} |",
        f"| questions rejected | {_n(g.added('rejected'))} | {_n(g.after.get('rejected'))} |",
        # Both columns from the same totals: new training questions, and new test items held out of them.
        f"| training questions ingested | {_n(g.added('questions'))} | {_n(g.after.get('questions'))} |",
        f"| questions pending | | {_n(g.after.get('pending'))} |",
        f"| benchmark test items held out | {_n(g.added('benchmark_test_held_out'))} | {_n(g.after.get('benchmark_test_held_out'))} |",
        f"| tokens (prompt + completion) | {_n(t['total'])} | |",
        f"| cost at the pipeline file's prices | {_usd(g.cost_usd)} | |",
        f"| cost per sample added | {_usd(g.cost_per_sample_usd)} | |",
        "",
        f"Nightly run: pipeline run {g.nightly_run_id}. Budget: {budget}. Claimed {_n(int(g.build.get('claimed', 0)))} questions, finished "
        f"{_n(int(g.build.get('done', 0)))}, left {_n(int(g.build.get('failed', 0)))} unfinished for the next night, "
        f"set aside {_n(int(g.build.get('set_aside', 0)))}{stopped}."
        + (f" **Build: {g.build_error}**" if g.build_error else ""),
        "",
        "## Tier mix (questions finished this night)",
        _table(_tier_mix(g.finished.get("tiers", [])), ["tier", "accepted", "rejected", "samples"], "none"),
        "",
        "## Per sample (questions finished this night, every call of theirs over their samples)",
        _table(
            g.finished.get("cost", []),
            [
                "tier",
                "samples",
                "calls",
                "prompt_tokens_per_sample",
                "completion_tokens_per_sample",
                "engine_s_per_sample",
            ],
            "none",
        ),
        "",
        f"## Tokens: {_n(t['prompt'])} prompt + {_n(t['completion'])} completion",
        _table(
            (g.build.get("report") or {}).get("tokens", []),
            ["stage", "model", "calls", "prompt_tokens", "completion_tokens", "failed_calls"],
            "no calls",
        ),
        "",
        "## Rejected",
        _table(g.finished.get("rejections", []), ["tier", "reason", "questions"], "none"),
        "",
        "## Set aside this night (skipped until `reasonmed retry`)",
        _table(
            (g.build.get("report") or {}).get("set_aside", []),
            ["question_id", "source_id", "stage", "failures", "last_error_kind", "last_error"],
            "none",
        ),
        "",
        "## Ingest",
        _table(g.ingest, ["file", "status", "inserted", "duplicates", "rejected"], "no input files"),
        "",
        "## Export",
    ]
    if g.export:
        lines.append(f"Version **{g.export.get('version')}** at `{g.export.get('location')}`")
        counts = g.export.get("counts") or {}
        if isinstance(counts, Mapping) and counts:
            lines += [
                "",
                _table([{"dataset": k, "rows": v} for k, v in counts.items()], ["dataset", "rows"], ""),
            ]
    elif g.export_error:
        lines.append(f"**Export failed:** {g.export_error}")
    elif g.export_skipped:
        lines.append(f"_no new version: {g.export_skipped}_")
    else:
        lines.append("_not exported_")
    return "\n".join(lines) + "\n"
