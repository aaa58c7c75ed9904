"""From accepted database rows to the three datasets' rows: pure logic, no I/O.

ReasonMed's ``output`` is the chain of thought, a blank line, then the summary; CoTMed keeps the chain
of thought only and ResponseMed the summary only. Every row carries the answer and the ids that trace
it back to the question, path, verdict, summary and run, so any sample can be audited.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args

import pyarrow as pa
import pyarrow.compute as pc

from reasonmed.prompts import format_options as prompt_options
from reasonmed.prompts import options_inline

Layout = Literal["instruction", "chat"]
LAYOUTS: tuple[Layout, ...] = get_args(Layout)
DATASETS: tuple[str, ...] = ("ReasonMed", "CoTMed", "ResponseMed")

SYSTEM_PROMPT = (
    "You are a medical expert. Reason through the question step by step, weigh every option, "
    "and state the final answer."
)


class BenchmarkLeakError(RuntimeError):
    """A benchmark-test question reached the writer: the export stops and nothing is published."""


class SourceRow(NamedTuple):
    """One accepted path of an accepted question, as ``reasonmed.db.export_repo`` reads it."""

    question_id: int
    source: str
    source_id: str
    question: str
    context: str | None
    options: list[Any]
    answer: str
    is_benchmark_test: bool
    rank: int
    path_id: int
    verdict_id: int
    summary_id: int
    run_id: int | None
    model: str
    temperature: float
    origin: str
    cot: str
    summary: str


TRACE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("answer", pa.string()),
    ("question_id", pa.int64()),
    ("source", pa.string()),
    ("source_id", pa.string()),
    ("path_id", pa.int64()),
    ("verdict_id", pa.int64()),
    ("summary_id", pa.int64()),
    ("run_id", pa.int64()),
    ("model", pa.string()),
    ("temperature", pa.float64()),
    ("origin", pa.string()),
]
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


def schema(layout: Layout) -> pa.Schema:
    """Fixed schemas (never inferred), so every shard and every export has identical column types."""
    if layout == "instruction":
        head = [("instruction", pa.string()), ("input", pa.string()), ("output", pa.string())]
    elif layout == "chat":
        head = [("messages", pa.list_(MESSAGE))]
    else:
        raise ValueError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    return pa.schema([pa.field(n, t, nullable=(n == "run_id")) for n, t in head + TRACE_FIELDS])


def format_options(options: Sequence[Sequence[str]]) -> str:
    """The options as the prompts show them (``reasonmed.prompts.format_options``), under an "Options:" head."""
    by_label = {str(label): str(text) for label, text in options}
    head = "Options: " if options_inline(by_label) else "Options:\n"
    return head + prompt_options(by_label)


def format_instruction(question: str, context: str | None, options: Sequence[Sequence[str]]) -> str:
    parts = [question.strip()]
    if context and context.strip():
        parts.append("Context:\n" + context.strip())
    if options:
        parts.append(format_options(options))
    return "\n\n".join(parts)


def dataset_output(dataset: str, cot: str, summary: str) -> str:
    if dataset == "ReasonMed":
        return f"{cot.strip()}\n\n{summary.strip()}"
    if dataset == "CoTMed":
        return cot.strip()
    if dataset == "ResponseMed":
        return summary.strip()
    raise ValueError(f"unknown dataset {dataset!r}")


def check_no_benchmark(rows: Sequence[SourceRow], benchmark_ids: set[int] | frozenset[int]) -> None:
    """The write-time guard, independent of the SQL filter: raise if any row is a benchmark-test item."""
    for r in rows:
        if r.is_benchmark_test or r.question_id in benchmark_ids:
            raise BenchmarkLeakError(
                f"question {r.question_id} ({r.source}:{r.source_id}) is a benchmark-test item and must "
                "never be exported; nothing was published"
            )


def drop_excluded(
    rows: Sequence[SourceRow], excluded: Mapping[int, Any]
) -> tuple[list[SourceRow], list[SourceRow]]:
    """Split rows into (kept, dropped) by question id, e.g. for contaminated questions."""
    if not excluded:
        return list(rows), []
    kept: list[SourceRow] = []
    dropped: list[SourceRow] = []
    for r in rows:
        (dropped if r.question_id in excluded else kept).append(r)
    return kept, dropped


def _trace_arrays(rows: Sequence[SourceRow]) -> dict[str, pa.Array]:
    cols = {
        "answer": [r.answer for r in rows],
        "question_id": [r.question_id for r in rows],
        "source": [r.source for r in rows],
        "source_id": [r.source_id for r in rows],
        "path_id": [r.path_id for r in rows],
        "verdict_id": [r.verdict_id for r in rows],
        "summary_id": [r.summary_id for r in rows],
        "run_id": [r.run_id for r in rows],
        "model": [r.model for r in rows],
        "temperature": [float(r.temperature) for r in rows],
        "origin": [r.origin for r in rows],
    }
    return {name: pa.array(cols[name], type=typ) for name, typ in TRACE_FIELDS}


def _options(value: Any) -> list[Any]:
    """Options arrive as a JSON list, or as its text when the reader skips the driver's JSON decoding."""
    return json.loads(value) if isinstance(value, str | bytes) else list(value or [])


def instructions(rows: Sequence[SourceRow]) -> list[str]:
    """One instruction per row; a question's paths are adjacent, so each question is formatted once."""
    out: list[str] = []
    last_id, last = None, ""
    for r in rows:
        if r.question_id != last_id:
            last_id, last = r.question_id, format_instruction(r.question, r.context, _options(r.options))
        out.append(last)
    return out


def _outputs(rows: Sequence[SourceRow]) -> dict[str, pa.Array]:
    """The three datasets' outputs, computed column-wise (same result as ``dataset_output``)."""
    cot = pc.utf8_trim_whitespace(pa.array([r.cot for r in rows], type=pa.string()))
    summary = pc.utf8_trim_whitespace(pa.array([r.summary for r in rows], type=pa.string()))
    return {
        "ReasonMed": pc.binary_join_element_wise(cot, summary, "\n\n"),
        "CoTMed": cot,
        "ResponseMed": summary,
    }


def _messages(prompts: pa.Array, outputs: pa.Array) -> pa.Array:
    """[system, user, assistant] per row as list<struct<role, content>>, built without Python loops."""
    n = len(prompts)
    system = pa.array([SYSTEM_PROMPT] * n, type=pa.string())
    contents = pa.concat_arrays([system, prompts, outputs])  # [all systems | all prompts | all outputs]
    order = pa.array([k * n + i for i in range(n) for k in range(3)], type=pa.int64())
    roles = pa.array(["system", "user", "assistant"] * n, type=pa.string())
    structs = pa.StructArray.from_arrays([roles, contents.take(order)], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(range(0, 3 * n + 1, 3), type=pa.int32()), structs).cast(
        pa.list_(MESSAGE)
    )


def build_tables(rows: Sequence[SourceRow], layout: Layout) -> dict[str, pa.Table]:
    """The three datasets' rows for one batch, as Arrow tables with the layout's fixed schema.

    Shared columns (instruction, trace ids) are converted to Arrow once and reused by all three tables.
    """
    sch = schema(layout)
    prompts = pa.array(instructions(rows), type=pa.string())
    trace = _trace_arrays(rows)
    tables: dict[str, pa.Table] = {}
    for name, output in _outputs(rows).items():
        if layout == "instruction":
            head: dict[str, pa.Array] = {
                "instruction": prompts,
                "input": pa.array([""] * len(rows), type=pa.string()),
                "output": output,
            }
        else:
            head = {"messages": _messages(prompts, output)}
        tables[name] = pa.Table.from_arrays([{**head, **trace}[f.name] for f in sch], schema=sch)
    return tables
