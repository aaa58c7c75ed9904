"""``reasonmed show QUESTION_ID``: one question's story, from its paths to the exported rows."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table

from reasonmed.cli.app import INSPECT, app
from reasonmed.cli.common import engine_from_settings
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_json, safe_text
from reasonmed.db import inspect_repo, migrate
from reasonmed.db.inspect_repo import QuestionStory
from reasonmed.mistake import Mistake

WIDTH = 100  # the view is laid out for this many columns at most


def _short(text: str | None, n: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _decision(story: QuestionStory) -> str:
    if story.status is None:
        return "not processed yet" + (
            " (benchmark test item: never used for training)" if story.is_benchmark_test else ""
        )
    line = f"tier {story.tier or '-'}: {story.n_correct} of {story.n_paths} generated paths judged correct -> {story.status}"
    if story.status == "rejected":
        line += f" ({story.rejection_reason})"
    else:
        line += f", {story.n_accepted} path(s) accepted"
    return line


def _paths_table(story: QuestionStory) -> Table:
    t = Table(
        title="paths (refined/regenerated ones name their parent path)",
        title_justify="left",
        box=None,
        pad_edge=False,
        expand=True,
    )
    t.add_column("path", justify="right", no_wrap=True)
    t.add_column("origin", no_wrap=True)
    t.add_column("model", no_wrap=True, max_width=22, overflow="ellipsis")
    t.add_column("temp", justify="right", no_wrap=True)
    t.add_column("ans", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("kept", justify="right", no_wrap=True)
    t.add_column("verifier's reason", no_wrap=True, overflow="ellipsis", ratio=1)
    for p in story.paths:
        origin = p.origin if p.parent_path_id is None else f"{p.origin[:3]}<-{p.parent_path_id}"
        kept = (
            "-" if p.accepted_rank is None else ("dropped" if p.dropped_reason else f"#{p.accepted_rank + 1}")
        )
        cells = (
            str(p.id),
            origin,
            p.model,
            f"{p.temperature:g}",
            p.extracted_answer or "-",
            p.verdict or "-",
            "-" if p.rank_score is None else str(p.rank_score),
            kept,
            _short(p.verdict_reason, 200) or "-",
        )
        t.add_row(*map(safe_text, cells))
    return t


def render(story: QuestionStory) -> RenderableType:
    """The terminal view of ``question_story`` (also what ``reasonmed.show`` prints in a notebook)."""
    parts: list[RenderableType] = [
        safe_text(
            f"question {story.id}: {story.source} {story.source_id} ({story.split}"
            + (", benchmark test" if story.is_benchmark_test else "")
            + ")",
            style="bold",
        ),
        safe_text(_short(story.question, 600)),
    ]
    if story.context:
        parts.append(safe_text("context: " + _short(story.context, 300), style="dim"))
    options = "   ".join(f"{label}. {_short(str(text), 40)}" for label, text in story.options)
    parts += [
        safe_text(f"options: {options}"),
        safe_text(f"answer key: {story.answer}"),
        safe_text(_decision(story), style="bold"),
    ]
    if story.paths:
        parts.append(_paths_table(story))
    kept = [p for p in story.paths if p.accepted_rank is not None]
    if kept:
        parts.append(safe_text("accepted paths and summaries", style="bold"))
        for p in sorted(kept, key=lambda p: p.accepted_rank or 0):
            state = (
                f"dropped: {p.dropped_reason}"
                if p.dropped_reason
                else (f"summary: {_short(p.summary, 400)}" if p.summary else "not summarised yet")
            )
            parts.append(
                safe_text(f"  #{(p.accepted_rank or 0) + 1} path {p.id} ({p.origin}, {p.model}): {state}")
            )
    for f in story.failures:
        aside = f", set aside {f['set_aside_at']}" if f["set_aside_at"] else ""
        parts.append(
            safe_text(
                f"failed at {f['stage']} x{f['failures']} ({f['last_error_kind']}{aside}): "
                f"{_short(f['last_error'], 200)}",
                style="yellow",
            )
        )
    if story.exported:
        by_version: dict[int, list[int]] = {}
        for r in story.exported:
            by_version.setdefault(r.version, []).append(r.path_id)
        for version, ids in by_version.items():
            parts.append(
                safe_text(
                    f"exported in dataset version {version}: {len(ids)} row(s) per dataset, "
                    f"path(s) {', '.join(map(str, ids))}"
                )
            )
    elif kept:
        parts.append(safe_text("not exported yet (`reasonmed export`)", style="dim"))
    return Group(*parts)


def print_story(story: QuestionStory, console: Console | None = None) -> None:
    out = console or Console(highlight=False, soft_wrap=False)
    out.width = min(out.width, WIDTH)
    out.print(render(story))


def load_story(question_id: int, database_url: str | None = None) -> QuestionStory:
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    story = inspect_repo.question_story(engine, question_id)
    if story is None:
        raise Mistake(
            f"no question with id {question_id} in this database "
            "(ids: `reasonmed audit`, or table questions)",
            exit_code=1,
        )
    return story


@app.command("show", rich_help_panel=INSPECT)
def show(
    question_id: Annotated[
        int,
        typer.Argument(
            metavar="QUESTION_ID", callback=in_range(1), help="The question's id (table questions)."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Everything as one JSON object instead of the terminal view.")
    ] = False,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """One question's story: its paths (model, temperature, answer, verdict and reason, rank score), the tier
    decision, refinements and regenerations with their verdicts, accepted paths and summaries, exported rows."""
    story = load_story(question_id, database_url)
    if as_json:
        typer.echo(safe_json(json.dumps(story.as_dict(), indent=2, ensure_ascii=False, default=str)))
        return
    print_story(story)
