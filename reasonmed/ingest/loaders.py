"""Streaming loaders: each public question format in, one ``LoadedRecord`` per record out.

A record is either a normalised ``Question`` or a one-line reason why it is not one; a bad record never
stops the file. Only problems with the file as a whole (wrong format, a mapped column the file lacks,
ambiguous MedMCQA answer base) raise ``FileFormatError``, before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationError

from reasonmed.ingest.hf_datasets import iter_dataset_rows, open_source
from reasonmed.ingest.metadata import cap_metadata
from reasonmed.ingest.parquet import iter_parquet_rows, parquet_columns
from reasonmed.ingest.readers import (
    FileFormatError,
    Limits,
    RawRecord,
    bounded_lines,
    clip,
    iter_csv_rows,
    iter_json_lines,
    iter_json_object,
)
from reasonmed.models import PUBMEDQA_OPTIONS, Question, normalise_text

# The file formats a source can be read as (the choices of every --format option and flow parameter);
# "datasets" is a Hugging Face datasets folder (save_to_disk) or hf://datasets/OWNER/NAME (hf_datasets.py).
SourceFormat = Literal["medqa", "medmcqa", "pubmedqa", "mmlu", "jsonl", "csv", "parquet", "datasets"]
FORMATS: tuple[SourceFormat, ...] = get_args(SourceFormat)
# The ``source`` a stored question carries: the named formats, or "custom" for the generic ones.
QuestionSource = Literal["medqa", "medmcqa", "pubmedqa", "mmlu", "custom"]
GENERIC_FORMATS = ("jsonl", "csv", "parquet", "datasets")
CopBase = Literal["auto", 0, 1]
Warn = Callable[[str], None]

MAX_SOURCE_ID = 200  # questions.source_id is VARCHAR(200)
MAX_LABEL = 32  # questions.answer is VARCHAR(32)
MAX_OTHER_COLUMNS = 32  # Parquet columns read besides the mapped ones (for metadata), in file order
MAPPING_FIELDS = ("id", "question", "context", "answer", "options")

__all__ = [
    "FORMATS",
    "CopBase",
    "FileFormatError",
    "Limits",
    "LoadedRecord",
    "detect_cop_base",
    "load",
    "parse_mapping",
    "reason_kind",
    "suggest_source",
    "synthetic_id",
]


@dataclass(slots=True, frozen=True)
class LoadedRecord:
    """What a loader yields: ``question`` for a good record, ``error`` (one line) for a bad one."""

    ref: str  # "line 17" / "record 21645374" / "row 5"
    question: Question | None
    error: str | None
    raw: str | None


class RecordError(ValueError):
    """A problem with one record; its message is the stored reason."""


# --------------------------------------------------------------------------- shared helpers


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic error as the short reason a person reads, e.g. ``answer 'E' is not among the options (A, B)``."""
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(msg if err["type"] == "value_error" or not loc else f"{loc}: {msg}")
    return "; ".join(dict.fromkeys(parts))


_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\s*\([^)]*\)")


def reason_kind(reason: str) -> str:
    """Groups reasons for counting: quoted values and parenthesised details are dropped."""
    return " ".join(_VARIABLE.sub("", reason).split()) or reason


def _build(
    ref: str, raw: str | None, limits: Limits, *, options: Mapping[Any, Any], **fields: Any
) -> LoadedRecord:
    try:
        # Option texts may arrive as numbers (JSON, Parquet); the question model wants text.
        texts = {str(k): _option_text(k, v) for k, v in options.items()}
        _check_sizes(
            limits,
            texts,
            question=fields.get("question"),
            context=fields.get("context"),
            id=fields.get("source_id"),
        )
    except RecordError as exc:
        return LoadedRecord(ref, None, str(exc), clip(raw) if raw else None)
    if "metadata" in fields:
        fields["metadata"] = cap_metadata(fields["metadata"], limits.max_metadata_bytes)
    try:
        q = Question(options=texts, **fields)
    except ValidationError as exc:
        return LoadedRecord(ref, None, describe_validation_error(exc), clip(raw) if raw else None)
    if len(q.source_id) > MAX_SOURCE_ID:
        return LoadedRecord(
            ref, None, f"id is longer than {MAX_SOURCE_ID} characters", clip(raw) if raw else None
        )
    if len(q.answer) > MAX_LABEL:
        return LoadedRecord(
            ref, None, f"answer label is longer than {MAX_LABEL} characters", clip(raw) if raw else None
        )
    return LoadedRecord(ref, q, None, None)


def _error(rec: RawRecord, reason: str) -> LoadedRecord:
    return LoadedRecord(rec.ref, None, reason, clip(rec.raw) if rec.raw else None)


def _safely(rec: RawRecord, convert: Callable[[RawRecord], LoadedRecord]) -> LoadedRecord:
    """One record's outcome, whatever it holds: any failure becomes its reason, never the file's end."""
    if rec.error:
        return _error(rec, rec.error)
    try:
        return convert(rec)
    except RecordError as exc:
        return _error(rec, str(exc))
    except RecursionError:
        return _error(rec, "record is nested too deeply")
    except Exception as exc:  # a shape no rule foresaw: this record is lost, not the file
        return _error(rec, f"record cannot be read ({type(exc).__name__}: {clip(str(exc))[:200]})")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        float: "a number",
        int: "a number",
    }.get(type(value), f"a {type(value).__name__}")


def _option_text(label: Any, value: Any) -> str:
    """An option's text: text as given, a finite number as its digits; NaN, Infinity, booleans and
    containers are not option texts."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bool):
        raise RecordError(f"option {label} is a boolean, not text")
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(f"option {label} is {value} (NaN or Infinity), not text")
        return str(value)
    raise RecordError(f"option {label} is {_kind(value)}, not text")


def _field_text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """A text field exactly as given; None stays None (the model then says what is missing)."""
    if value is None:
        return None if optional else ""
    if isinstance(value, str):
        return value
    raise RecordError(f"{name} is {_kind(value)}, not text")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_sizes(limits: Limits, options: Mapping[str, str], **texts: Any) -> None:
    """Field limits, and text that is valid Unicode (a JSON ``\\ud800`` escape decodes to a lone surrogate)."""
    for text in (*texts.values(), *options.keys(), *options.values()):
        if isinstance(text, str) and _LONE_SURROGATE.search(text):
            raise RecordError("text contains an unpaired surrogate (not valid Unicode)")
    cap = limits.max_field_chars
    for name, text in texts.items():
        if isinstance(text, str) and len(text) > cap:
            raise RecordError(
                f"{name} is longer than the field limit ({len(text):,} characters > {cap:,}; "
                "raise REASONMED_INGEST_MAX_FIELD_CHARS if it is genuine)"
            )
    for label, text in options.items():
        if len(text) > cap:
            raise RecordError(
                f"option {label} is longer than the field limit ({len(text):,} characters > {cap:,})"
            )


def whole_number(value: Any) -> int | None:
    """An index as an int: an integer, an integral float (2.0) or digits; None for anything else
    (1.5, NaN, True, "two"), which must never be read as an answer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
        return int(value)
    return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _names(answer: str, option: Any) -> bool:
    """Whether an answer text names an option: equal after normalisation, or a prefix of it
    (``Thiamine`` names ``Thiamine (B1)``)."""
    a, o = normalise_text(answer).casefold(), normalise_text(_text(option)).casefold()
    return bool(a) and (a == o or o.startswith(a))


def _short(value: Any, n: int = 40) -> str:
    s = str(value)
    return repr(s if len(s) <= n else s[: n - 1] + "…")


def resolve_answer(value: Any, options: Mapping[str, Any], index_base: int | None = None) -> str:
    """The option label an answer names: a label, an option's text, or (only if asked) an index."""
    if _blank(value):
        raise RecordError("no answer")
    if isinstance(value, bool | dict | list):
        raise RecordError(f"answer is {_kind(value)}, not a label, an option text or an index")
    if isinstance(value, float) and not value.is_integer():
        raise RecordError(f"answer {value!r} is not a whole number, so it names no option")
    labels = [str(k).strip() for k in options]
    number = whole_number(value)
    if index_base is not None and number is not None:
        idx = number - index_base
        if not 0 <= idx < len(labels):
            raise RecordError(
                f"answer index out of range (got {number}, expected {index_base}-{index_base + len(labels) - 1})"
            )
        return labels[idx]
    s = str(value).strip()
    if s in labels:
        return s
    if len(s) == 1 and s.upper() in labels:
        return s.upper()
    wanted = normalise_text(s).casefold()
    matches = [
        lab
        for lab, text in zip(labels, options.values(), strict=True)
        if normalise_text(_text(text)).casefold() == wanted
    ]
    if len(matches) == 1:
        return matches[0]
    hint = "; pass an answer index base if it is an index" if s.isdigit() and index_base is None else ""
    raise RecordError(f"answer {_short(s)} is not among the options ({', '.join(labels)}{hint})")


def _source_id(value: Any, ref: str) -> str:
    if _blank(value):
        return ref.replace(" ", "-")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"id is {_kind(value)}, not text or a whole number")


def synthetic_id(source_id: str, ref: str) -> bool:
    """Whether an id was made from the record's position (the record had none)."""
    return source_id == ref.replace(" ", "-")


def _rest(value: Mapping[str, Any], used: set[str] | frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in used}


# --------------------------------------------------------------------------- MedQA

_MEDQA_USED = frozenset({"id", "question", "options", "answer_idx", "answer"})


def _medqa(rec: RawRecord, split: str, limits: Limits) -> LoadedRecord:
    v = rec.value
    options = v.get("options")
    if not isinstance(options, dict):
        return _error(rec, "options missing or not an object of label: text")
    idx, text = v.get("answer_idx"), _field_text("answer", v.get("answer"), optional=True)
    if idx is not None and not isinstance(idx, str) and whole_number(idx) is None:
        raise RecordError(f"answer_idx is {_kind(idx)}, not an option label")
    if _blank(idx):
        label = resolve_answer(text, options)
    else:
        label = str(idx).strip()
        named = options.get(label)
        if text and named is not None and not _names(text, named):
            # The label decides; the text only vetoes it when it clearly names another option.
            other = next((lab for lab, t in options.items() if lab != label and _names(text, t)), None)
            if other is not None:
                raise RecordError(
                    f"answer_idx {label!r} and answer text {_short(text)} disagree (the text names option {other})"
                )
    return _build(
        rec.ref,
        rec.raw,
        limits,
        source="medqa",
        source_id=_source_id(v.get("id"), rec.ref),
        question=_field_text("question", v.get("question")),
        options=options,
        answer=label,
        split=split,
        metadata=_rest(v, _MEDQA_USED),
    )


def load_medqa(path: Path, split: str = "train", limits: Limits | None = None) -> Iterator[LoadedRecord]:
    limits = limits or Limits()
    for rec in iter_json_lines(path, limits):
        yield _safely(rec, lambda r: _medqa(r, split, limits))


# --------------------------------------------------------------------------- MedMCQA

_MEDMCQA_OPTS = (("A", "opa"), ("B", "opb"), ("C", "opc"), ("D", "opd"))
_MEDMCQA_META = ("exp", "subject_name", "topic_name", "choice_type")
_COP = re.compile(rb'"cop"\s*:\s*"?(-?\d+)')


def detect_cop_base(path: Path) -> tuple[Literal[0, 1], str | None]:
    """Whether ``cop`` counts from 0 or 1, by a streaming pre-scan: returns (base, warning or None)."""
    zero = four = False
    with path.open("rb") as f:
        for line in bounded_lines(f, Limits()):
            m = _COP.search(line.data)
            if m:
                zero |= m.group(1) == b"0"
                four |= m.group(1) == b"4"
                if zero and four:
                    raise FileFormatError(
                        f"{path.name}: cop values include both 0 and 4, so the answer base cannot be told: "
                        "pass --cop-base 0 or --cop-base 1"
                    )
    if zero:
        return 0, None
    if four:
        return 1, None
    return (
        1,
        f"{path.name}: no cop value is 0 or 4, so the base cannot be told; assumed 1-based (original release)",
    )


def _medmcqa(rec: RawRecord, split: str, base: int, limits: Limits) -> LoadedRecord:
    v = rec.value
    cop = v.get("cop")
    if _blank(cop):
        return _error(rec, "no answer")
    number = whole_number(cop)
    if number is None:
        return _error(rec, f"cop is not a whole number (got {_short(cop)})")
    idx = number - base
    if not 0 <= idx < len(_MEDMCQA_OPTS):
        return _error(rec, f"cop out of range (got {cop}, expected {base}-{base + 3})")
    options = {label: v.get(key) for label, key in _MEDMCQA_OPTS}
    return _build(
        rec.ref,
        rec.raw,
        limits,
        source="medmcqa",
        source_id=_source_id(v.get("id"), rec.ref),
        question=_field_text("question", v.get("question")),
        options=options,
        answer=_MEDMCQA_OPTS[idx][0],
        split=split,
        metadata={k: v[k] for k in _MEDMCQA_META if k in v},
    )


def load_medmcqa(
    path: Path,
    split: str = "train",
    cop_base: CopBase = "auto",
    warn: Warn | None = None,
    limits: Limits | None = None,
) -> Iterator[LoadedRecord]:
    limits = limits or Limits()
    if cop_base == "auto":
        base, warning = detect_cop_base(path)
        if warning and warn:
            warn(warning)
    elif cop_base in (0, 1):
        base = cop_base
    else:
        raise FileFormatError(f"cop_base must be auto, 0 or 1 (got {cop_base!r})")
    for rec in iter_json_lines(path, limits):
        yield _safely(rec, lambda r: _medmcqa(r, split, base, limits))


# --------------------------------------------------------------------------- PubMedQA

_PUBMEDQA_USED = frozenset({"QUESTION", "CONTEXTS", "LABELS", "final_decision"})


def _text_list(name: str, value: Any) -> list[str | None]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise RecordError(f"{name} is {_kind(value)}, not a list of texts")
    for item in value:
        if item is not None and not isinstance(item, str):
            raise RecordError(f"{name} holds {_kind(item)}, not only texts")
    return value


def _pubmedqa(key: str, rec: RawRecord, split: str, limits: Limits) -> LoadedRecord:
    v = rec.value
    if not key.strip():
        raise RecordError("record has an empty key, so it has no id")
    decision = _field_text("final_decision", v.get("final_decision"), optional=True)
    if _blank(decision):
        return _error(rec, "no answer")
    assert decision is not None
    contexts = _text_list("CONTEXTS", v.get("CONTEXTS"))
    labels = _text_list("LABELS", v.get("LABELS"))
    parts = []
    for i, section in enumerate(contexts):
        label = labels[i] if i < len(labels) and not _blank(labels[i]) else None
        parts.append(f"{label}: {_text(section).strip()}" if label else _text(section).strip())
    return _build(
        rec.ref,
        rec.raw,
        limits,
        source="pubmedqa",
        source_id=key,
        question=_field_text("QUESTION", v.get("QUESTION")),
        context="\n".join(parts) or None,
        options=PUBMEDQA_OPTIONS,
        answer=decision.strip().lower(),
        split=split,
        metadata=_rest(v, _PUBMEDQA_USED),
    )


def load_pubmedqa(path: Path, split: str = "train", limits: Limits | None = None) -> Iterator[LoadedRecord]:
    limits = limits or Limits()
    for key, rec in iter_json_object(path, limits):
        yield _safely(rec, partial(_pubmedqa, key, split=split, limits=limits))


# --------------------------------------------------------------------------- MMLU

_MMLU_NAME = re.compile(r"(?P<subset>.+?)_(?P<split>dev|val|validation|test|train|auxiliary_train)")
_MMLU_LABELS = ("A", "B", "C", "D")


def mmlu_name(path: Path) -> tuple[str, str | None]:
    """(subset, split) from names like ``clinical_knowledge_val.csv``; split None if the name has none."""
    m = _MMLU_NAME.fullmatch(path.stem)
    return (m["subset"], m["split"]) if m else (path.stem, None)


def load_mmlu(path: Path, split: str = "train", limits: Limits | None = None) -> Iterator[LoadedRecord]:
    """Header-less CSV rows ``question, A, B, C, D, answer``; a ``*_test.csv`` file is benchmark test data."""
    subset, file_split = mmlu_name(path)
    q_split = "test" if "test" in (split, file_split) else (file_split or split)
    id_prefix = f"{subset}-{file_split or split}"
    lim = limits or Limits()

    def convert(rec: RawRecord) -> LoadedRecord:
        row = rec.value
        if len(row) != 6:
            return _error(
                rec, f"wrong number of columns (expected 6: question, A, B, C, D, answer; got {len(row)})"
            )
        options = dict(zip(_MMLU_LABELS, row[1:5], strict=True))
        answer = resolve_answer(row[5], options)
        return _build(
            rec.ref,
            rec.raw,
            lim,
            source="mmlu",
            source_id=f"{id_prefix}-{rec.ref.split()[-1]}",
            question=row[0],
            options=options,
            answer=answer,
            split=q_split,
            metadata={"subset": subset},
        )

    for _, rec in iter_csv_rows(path, header=False, limits=lim):
        yield _safely(rec, convert)


# --------------------------------------------------------------------------- generic (jsonl / csv / parquet)


@dataclass(slots=True, frozen=True)
class ColumnMap:
    """Which column feeds which field; options come from one column or from one column per label."""

    fields: dict[str, str]  # field -> column
    option_columns: dict[str, str]  # label -> column

    @property
    def required(self) -> list[str]:
        cols = [self.fields["question"], self.fields["answer"]]
        return cols + (
            list(self.option_columns.values()) if self.option_columns else [self.fields["options"]]
        )

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.fields.values(), *self.option_columns.values()]))


def parse_mapping(mapping: Mapping[str, str] | None) -> ColumnMap:
    """Validate ``{field: column}`` (fields: id, question, context, answer, options, option:<label>).

    Unmapped fields default to a column of the same name.
    """
    fields = {f: f for f in MAPPING_FIELDS}
    option_columns: dict[str, str] = {}
    for key, column in (mapping or {}).items():
        key, column = key.strip(), str(column).strip()
        if not column:
            raise FileFormatError(f"mapping for {key!r} names no column")
        if key.startswith("option:"):
            label = key.removeprefix("option:").strip()
            if not label:
                raise FileFormatError(f"mapping {key!r} names no option label (use option:A=column)")
            option_columns[label] = column
        elif key in fields:
            fields[key] = column
        else:
            raise FileFormatError(
                f"unknown mapping field {key!r} (known: {', '.join(MAPPING_FIELDS)}, option:<label>)"
            )
    if option_columns and mapping and "options" in mapping:
        raise FileFormatError("map either 'options' (one column) or option:<label> columns, not both")
    if option_columns and len(option_columns) < 2:
        raise FileFormatError("option:<label> mapping needs at least 2 option columns")
    return ColumnMap(fields, option_columns)


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else str(i + 1)


def options_from_value(value: Any) -> dict[str, Any]:
    """Options held in one cell: an object, a list of texts, a list of [label, text] pairs, or JSON text of those."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError("options cell is not valid JSON") from None
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
            return {str(k): v for k, v in value}
        return {_label(i): v for i, v in enumerate(value)}
    if _blank(value):
        raise RecordError("fewer than 2 options (0)")
    raise RecordError(f"options cell holds {_kind(value)}, not an object or a list")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _generic_cells(
    names: Sequence[str],
    rec: RawRecord,
    m: ColumnMap,
    fmt: str,
    split: str,
    index_base: int | None,
    limits: Limits,
) -> LoadedRecord:
    """A CSV row: its cells named by the header row."""
    return _generic(rec, dict(zip(names, rec.value, strict=True)), m, fmt, split, index_base, limits)


def _generic(
    rec: RawRecord,
    row: Mapping[str, Any],
    m: ColumnMap,
    fmt: str,
    split: str,
    index_base: int | None,
    limits: Limits,
) -> LoadedRecord:
    for col in m.required:
        if col not in row:
            return _error(rec, f"missing required column {col!r}")
    if m.option_columns:
        options = {label: row.get(col) for label, col in m.option_columns.items()}
    else:
        options = options_from_value(row[m.fields["options"]])
    answer = resolve_answer(row[m.fields["answer"]], options, index_base)
    context = _field_text("context", row.get(m.fields["context"]), optional=True)
    used = set(m.columns)
    metadata = {"format": fmt, **{k: _jsonable(v) for k, v in row.items() if k not in used}}
    return _build(
        rec.ref,
        rec.raw,
        limits,
        source="custom",
        source_id=_source_id(row.get(m.fields["id"]), rec.ref),
        question=_field_text("question", row[m.fields["question"]]),
        context=None if _blank(context) else context,
        options=options,
        answer=answer,
        split=split,
        metadata=metadata,
    )


def _check_header(path: Path, columns: list[str], m: ColumnMap) -> None:
    missing = [c for c in m.required if c not in columns]
    if missing:
        raise FileFormatError(
            f"{path.name}: required column(s) {', '.join(map(repr, missing))} not in the file "
            f"(columns: {', '.join(columns) or 'none'}); map them with --map field=column"
        )


def _parquet_selection(path: Path, columns: list[str], m: ColumnMap, warn: Warn | None) -> list[str]:
    """The columns a Parquet file is read for: the mapped ones, then up to MAX_OTHER_COLUMNS others
    (kept as metadata, within its cap); a typed file is read by column, so the rest cost nothing."""
    mapped = set(m.columns)
    others = [c for c in columns if c not in mapped]
    if len(others) > MAX_OTHER_COLUMNS and warn:
        warn(
            f"{path.name}: {len(others)} columns besides the mapped ones; only the first {MAX_OTHER_COLUMNS} "
            "are read (as metadata), the others are not"
        )
    return [c for c in columns if c in mapped] + others[:MAX_OTHER_COLUMNS]


def load_generic(
    path: Path,
    fmt: str,
    split: str = "train",
    mapping: Mapping[str, str] | None = None,
    answer_index_base: int | None = None,
    limits: Limits | None = None,
    warn: Warn | None = None,
) -> Iterator[LoadedRecord]:
    m = parse_mapping(mapping)
    lim = limits or Limits()
    if answer_index_base not in (None, 0, 1):
        raise FileFormatError(f"answer_index_base must be 0 or 1 (got {answer_index_base!r})")
    if fmt == "jsonl":
        for rec in iter_json_lines(path, lim):
            yield _safely(rec, lambda r: _generic(r, r.value, m, fmt, split, answer_index_base, lim))
    elif fmt == "csv":
        checked = False
        for names, rec in iter_csv_rows(path, header=True, limits=lim):
            assert names is not None
            if not checked:
                _check_header(path, names, m)
                checked = True
            if not rec.error and len(rec.value) != len(names):
                yield _error(
                    rec, f"wrong number of cells (header has {len(names)}, row has {len(rec.value)})"
                )
            else:
                yield _safely(
                    rec,
                    partial(
                        _generic_cells,
                        names,
                        m=m,
                        fmt=fmt,
                        split=split,
                        index_base=answer_index_base,
                        limits=lim,
                    ),
                )
    elif fmt == "parquet":
        columns = parquet_columns(path)
        _check_header(path, columns, m)
        for rec in iter_parquet_rows(path, _parquet_selection(path, columns, m, warn), lim):
            yield _safely(rec, lambda r: _generic(r, r.value, m, fmt, split, answer_index_base, lim))
    elif fmt == "datasets":
        opened = open_source(path, split)
        yield from load_dataset_rows(
            opened.dataset, opened.label, split, mapping, answer_index_base, lim, warn
        )
    else:
        raise FileFormatError(f"unknown generic format {fmt!r} (known: {', '.join(GENERIC_FORMATS)})")


def load_dataset_rows(
    ds: Any,
    label: str,
    split: str = "train",
    mapping: Mapping[str, str] | None = None,
    answer_index_base: int | None = None,
    limits: Limits | None = None,
    warn: Warn | None = None,
) -> Iterator[LoadedRecord]:
    """The rows of an opened ``datasets.Dataset`` (``hf_datasets.open_source``), read as the generic
    formats are: the same column mapping, checks and metadata as Parquet."""
    m = parse_mapping(mapping)
    lim = limits or Limits()
    if answer_index_base not in (None, 0, 1):
        raise FileFormatError(f"answer_index_base must be 0 or 1 (got {answer_index_base!r})")
    name = Path(label)
    columns = list(ds.column_names)
    _check_header(name, columns, m)
    for rec in iter_dataset_rows(ds, _parquet_selection(name, columns, m, warn), lim):
        yield _safely(rec, lambda r: _generic(r, r.value, m, "datasets", split, answer_index_base, lim))


# --------------------------------------------------------------------------- dispatch


def suggest_source(path: Path, tried: str, limits: Limits | None = None, sample: int = 20) -> str | None:
    """For a file none of whose records was valid as ``tried``: the format that reads most of its first
    ``sample`` records, phrased as the option to pass, or None when no format reads any."""
    best: tuple[str, int, int] | None = None
    for fmt in FORMATS:
        if fmt == tried:
            continue
        good = seen = 0
        try:
            for rec in islice(load(path, fmt, limits=limits), sample):
                seen += 1
                good += rec.question is not None
        except Exception:  # this format cannot read the file at all
            continue
        if good and (best is None or good > best[1]):
            best = (fmt, good, seen)
    if best is None:
        return None
    return f"--source {best[0]} reads {best[1]} of its first {best[2]} record(s)"


def load(
    path: Path | str,
    source: str,
    *,
    split: str = "train",
    mapping: Mapping[str, str] | None = None,
    cop_base: CopBase = "auto",
    answer_index_base: int | None = None,
    warn: Warn | None = None,
    limits: Limits | None = None,
) -> Iterator[LoadedRecord]:
    """Stream the records of one file in format ``source``; ``warn`` receives file-level warnings."""
    path = Path(path)
    if source not in FORMATS:
        raise FileFormatError(f"unknown source {source!r} (known: {', '.join(FORMATS)})")
    if mapping and source not in GENERIC_FORMATS:
        raise FileFormatError(
            f"--map applies to the generic formats ({', '.join(GENERIC_FORMATS)}), not {source}"
        )
    if source == "medqa":
        return load_medqa(path, split, limits)
    if source == "medmcqa":
        return load_medmcqa(path, split, cop_base, warn, limits)
    if source == "pubmedqa":
        return load_pubmedqa(path, split, limits)
    if source == "mmlu":
        return load_mmlu(path, split, limits)
    return load_generic(path, source, split, mapping, answer_index_base, limits, warn)
