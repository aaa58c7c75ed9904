"""Byte-level streaming readers: one record at a time, in flat memory, with bad bytes isolated per record.

Files are opened in binary so one line of invalid UTF-8 (or one bad JSON line) becomes one error record
instead of an exception that stops the whole file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

RAW_CHARS = 500  # how much of a bad record is kept for the error table
_CHUNK = 1 << 20
_SURROGATE = re.compile("[\udc80-\udcff]")  # what `surrogateescape` turns invalid UTF-8 bytes into

# Documented defaults (settings REASONMED_INGEST_MAX_RECORD_BYTES / _MAX_FIELD_CHARS / _MAX_DEPTH /
# _MAX_METADATA_BYTES / _MAX_PARQUET_PAGE_BYTES; docs/ingest.md).
DEFAULT_MAX_RECORD_BYTES = 1 << 20  # 1 MiB: the longest public record (PubMedQA) is ~20 KB
DEFAULT_MAX_FIELD_CHARS = 100_000  # one question, context or option; below csv's own 131,072 field limit
DEFAULT_MAX_DEPTH = 32  # JSON nesting: questions are at most 3 deep
DEFAULT_MAX_METADATA_BYTES = 16 << 10  # a record's other fields kept as metadata (public ones: ~2 KB)
DEFAULT_MAX_PAGE_BYTES = 64 << 20  # one Parquet page decompressed (writers' default pages are 1 MiB)


class FileFormatError(ValueError):
    """The file as a whole cannot be read in the requested format (wrong format, missing columns)."""


@dataclass(slots=True, frozen=True)
class Limits:
    """Bounds on one record, so one hostile record costs bounded memory and only itself."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_depth: int = DEFAULT_MAX_DEPTH
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES

    def __post_init__(self) -> None:
        for name in (
            "max_record_bytes",
            "max_field_chars",
            "max_depth",
            "max_metadata_bytes",
            "max_page_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")


@dataclass(slots=True)
class RawRecord:
    """One record before interpretation: a parsed value, or the reason it could not be parsed."""

    ref: str
    value: Any
    error: str | None
    raw: str | None


def clip(text: str) -> str:
    return text[:RAW_CHARS]


def _lossy(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _utf8_problem(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at position {exc.start})"


def json_kind(value: Any) -> str:
    """A parsed value's JSON type, as a person reading the file names it."""
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder (json.loads(**kw) builds one per call); NaN/Infinity are rejected, not read as floats.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than ``max_depth`` (iterative: a hostile depth cannot recurse)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if d > max_depth:
            return True
        stack.extend((c, d + 1) for c in v if isinstance(c, dict | list))
    return False


def parse_json(text: str, limits: Limits) -> tuple[Any, str | None]:
    """(value, None) or (None, the reason the text is not one acceptable JSON value)."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
    except RecursionError:
        return None, f"JSON nested too deeply (limit {limits.max_depth} levels)"
    except ValueError as exc:  # NaN / Infinity
        return None, f"not valid JSON ({exc})"
    if too_deep(value, limits.max_depth):
        return None, f"JSON nested too deeply (limit {limits.max_depth} levels)"
    return value, None


def too_big(size: int, limits: Limits) -> str:
    """The reason for a record over the record limit (every format words it alike)."""
    return (
        f"larger than the record limit ({size:,} bytes > {limits.max_record_bytes:,}; "
        "raise REASONMED_INGEST_MAX_RECORD_BYTES if it is genuine)"
    )


class Line(NamedTuple):
    number: int
    data: bytes  # the whole line, or only its first bytes when ``whole`` is False
    size: int
    whole: bool


def bounded_lines(f: io.BufferedReader, limits: Limits) -> Iterator[Line]:
    """Lines of a binary file, never one longer than the record limit in memory: an over-long line
    comes with ``whole=False`` and its first bytes only, the rest read in chunks and dropped."""
    n = 0
    limit = limits.max_record_bytes
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n += 1
        if n == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if len(line) > limit and not line.endswith(b"\n"):
            head, size = line[: RAW_CHARS * 4], len(line)
            while line and not line.endswith(b"\n"):
                line = f.readline(_CHUNK)
                size += len(line)
            yield Line(n, head, size, False)
            continue
        yield Line(n, line, len(line), True)


def iter_json_lines(path: Path, limits: Limits | None = None) -> Iterator[RawRecord]:
    """JSON Lines: blank lines are skipped; refs are 1-based line numbers.

    A byte-order mark at the start of any line is dropped (files joined with ``cat`` carry one per part).
    """
    limits = limits or Limits()
    with path.open("rb") as f:
        for n, line, size, whole in bounded_lines(f, limits):
            ref = f"line {n}"
            if not whole:
                yield RawRecord(ref, None, f"line is {too_big(size, limits)}", clip(_lossy(line)))
                continue
            if line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield RawRecord(
                    ref, None, f"line is {_utf8_problem(exc)}", clip(line.decode("utf-8", "replace"))
                )
                continue
            if not text or text.isspace():
                continue
            value, problem = parse_json(text, limits)
            if problem:
                yield RawRecord(ref, None, f"line is {problem}", clip(text))
                continue
            if not isinstance(value, dict):
                yield RawRecord(ref, None, f"line is a JSON {json_kind(value)}, not an object", clip(text))
                continue
            yield RawRecord(ref, value, None, text)


class _Undecodable(Exception):
    """The value at the stream position cannot be decoded (too big, too deep, broken); skip it."""


class _ObjectStream:
    """Incremental reader of one top-level JSON object, yielding its members without loading the file."""

    def __init__(self, f: io.BufferedReader, limits: Limits) -> None:
        self._f = f
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._json = _DECODER
        self._limits = limits
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        """Append one chunk (dropping what was consumed); False at end of file."""
        if self.eof:
            return False
        data = self._f.read(_CHUNK)
        text = self._decoder.decode(data, final=not data)
        if not data:
            self.eof = True
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(data) or bool(text)

    def skip_ws(self) -> str:
        """The next significant character ('' at end of file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n\ufeff":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def decode(self) -> tuple[Any, int]:
        """Decode the JSON value at pos, reading more until it is complete; returns (value, start).

        Raises _Undecodable (pos left at the value's start) for a value over the record limit, nested
        too deeply, or not valid JSON; FileFormatError when the file ends inside it.
        """
        limit = self._limits.max_record_bytes
        while True:
            start = self.pos
            try:
                value, end = self._json.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                if len(self.buf) - start > limit:
                    raise _Undecodable(
                        f"larger than the record limit ({limit:,} characters) or not valid JSON"
                    ) from None
                if not self.fill():  # broken, or cut short: skip_value tells which
                    raise _Undecodable(f"not valid JSON ({exc.msg})") from None
                continue
            except RecursionError:
                raise _Undecodable(
                    f"JSON nested too deeply (limit {self._limits.max_depth} levels)"
                ) from None
            except ValueError as exc:  # NaN / Infinity
                raise _Undecodable(f"not valid JSON ({exc})") from None
            # A number (or literal) that ends exactly at the buffer end may continue in the next chunk.
            if end == len(self.buf) and not self.eof and self.fill():
                continue
            self.pos = end
            return value, start

    def skip_value(self) -> None:
        """Move past the JSON value at pos by matching brackets and strings, in bounded memory, so one
        undecodable record does not hide the ones after it. Raises FileFormatError at end of file."""
        depth, in_str = 0, False
        while True:
            m = (_IN_STRING if in_str else _STRUCTURE).search(self.buf, self.pos)
            if m is None:
                self.pos = len(self.buf)
                if not self.fill():
                    raise FileFormatError("the file ends inside this record (truncated?)")
                continue
            ch, self.pos = m.group(), m.start()
            if in_str:
                if ch == "\\":
                    if self.pos + 1 >= len(self.buf) and not self.fill():
                        raise FileFormatError("the file ends inside this record (truncated?)")
                    self.pos += 2  # the escaped character, whatever it is
                    continue
                in_str = False
                self.pos += 1
                if depth == 0:
                    return
                continue
            if ch == '"':
                in_str = True
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth <= 0:
                    self.pos += depth == 0
                    return
            elif depth == 0:  # ',' after a bare scalar
                return
            self.pos += 1


_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["\[\]{},]')


def iter_json_object(path: Path, limits: Limits | None = None) -> Iterator[tuple[str, RawRecord]]:
    """Members of a file holding ONE JSON object ``{key: record, ...}`` (PubMedQA), streamed.

    Yields (key, record). A member that is not valid UTF-8, too big, too deep or not valid JSON is an
    error record and reading goes on after it; a file cut short ends with one error record.
    """
    limits = limits or Limits()
    with path.open("rb") as f:
        s = _ObjectStream(f, limits)
        if s.skip_ws() != "{":
            raise FileFormatError(
                "expected one JSON object keyed by record id (the file does not start with '{')"
            )
        s.pos += 1
        n = 0
        while True:
            ch = s.skip_ws()
            if ch == "}":
                return
            if n and ch == ",":
                s.pos += 1
                ch = s.skip_ws()
            elif n and ch == '"':  # a missing comma: reported, and the next record read all the same
                yield "", RawRecord(f"after record {n}", None, f"expected ',' after record {n}", None)
            elif n:
                problem = (
                    f"expected ',' or '}}' after record {n}"
                    if ch
                    else "file ends before the closing '}' (truncated?)"
                )
                yield "", RawRecord(f"after record {n}", None, problem, clip(s.buf[s.pos :]) or None)
                return
            if ch != '"':
                ref = f"record {n + 1}" if ch else f"after record {n}"
                yield (
                    "",
                    RawRecord(ref, None, "truncated file or not valid JSON (expected a quoted key)", None),
                )
                return
            key = f"#{n + 1}"
            try:
                key, _ = s.decode()
                if s.skip_ws() != ":":
                    raise FileFormatError(f"expected ':' after key {_printable(str(key))[:80]!r}")
                s.pos += 1
                s.skip_ws()
                try:
                    value, start = s.decode()
                except _Undecodable as exc:
                    head = _printable(clip(s.buf[s.pos :]))
                    n += 1
                    ref = f"record {_printable(str(key))}"
                    try:
                        s.skip_value()
                    except FileFormatError as end:
                        yield str(key), RawRecord(ref, None, str(end), head)
                        return
                    yield str(key), RawRecord(ref, None, f"record is {exc}", head)
                    continue
            except (FileFormatError, _Undecodable) as exc:
                yield (
                    "",
                    RawRecord(f"record {n + 1}", None, str(exc), _printable(clip(s.buf[s.pos :])) or None),
                )
                return
            n += 1
            yield key, _member(key, value, s.buf[start : s.pos], limits)


def _member(key: str, value: Any, text: str, limits: Limits) -> RawRecord:
    """One decoded member of the object as a record, or as the error record that says what is wrong."""
    ref = f"record {key}"
    if _SURROGATE.search(text) or _SURROGATE.search(key):
        return RawRecord(
            f"record {_printable(key)}", None, "record is not valid UTF-8", clip(_printable(text))
        )
    if not isinstance(value, dict):
        return RawRecord(ref, None, f"record is a JSON {json_kind(value)}, not an object", clip(text))
    if too_deep(value, limits.max_depth):
        return RawRecord(
            ref, None, f"record is JSON nested too deeply (limit {limits.max_depth} levels)", clip(text)
        )
    if len(text) > limits.max_record_bytes:
        return RawRecord(ref, None, f"record is {too_big(len(text), limits)}", clip(text))
    return RawRecord(ref, value, None, text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def iter_csv_rows(
    path: Path, *, header: bool, limits: Limits | None = None
) -> Iterator[tuple[list[str] | None, RawRecord]]:
    """CSV rows (quoted fields may span lines); refs count data rows from 1.

    With ``header`` the first row is returned as the first item's header and never as a record.
    A line over the record limit is dropped unread (bounded memory) and reported as its row.
    """
    limits = limits or Limits()
    oversized: list[Line] = []

    def lines() -> Iterator[str]:
        with path.open("rb") as fb:
            for line in bounded_lines(fb, limits):
                if line.whole:  # a byte-order mark mid-file comes from joining files: dropped
                    yield line.data.removeprefix(codecs.BOM_UTF8).decode("utf-8", "surrogateescape")
                else:
                    oversized.append(line)

    reader = csv.reader(lines())
    names: list[str] | None = None
    if header:
        names = _csv_header(reader, oversized)
        if names is None:
            return
    n = 0
    while True:
        try:
            row = next(reader)
            problem = None
        except StopIteration:
            row, problem = None, ""
        except csv.Error as exc:
            row, problem = [], f"row is not valid CSV ({exc})"
        while oversized:  # dropped lines come before the row the reader found after them
            n += 1
            big = oversized.pop(0)
            yield (
                names,
                RawRecord(f"row {n}", None, f"row is {too_big(big.size, limits)}", clip(_lossy(big.data))),
            )
        if row is None:
            return
        n += 1
        record = _csv_record(f"row {n}", row, problem, limits)
        if record is not None:
            yield names, record


def _csv_header(reader: Iterator[list[str]], oversized: list[Line]) -> list[str] | None:
    """The header row's names, stripped; ``None`` for an empty file. A bad header stops the file."""
    try:
        names = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise FileFormatError(f"header row is not valid CSV ({exc})") from None
    if oversized:
        raise FileFormatError("header row is larger than the record limit")
    if any(_SURROGATE.search(h) for h in names):
        raise FileFormatError("header row is not valid UTF-8")
    return [h.strip() for h in names]


def _csv_record(ref: str, row: list[str], problem: str | None, limits: Limits) -> RawRecord | None:
    """One data row as a record, or as the error record that says what is wrong; ``None`` for a blank row."""
    if problem:
        return RawRecord(ref, None, problem, None)
    if not row or not any(cell.strip() for cell in row):
        return None
    joined = ",".join(row)
    if _SURROGATE.search(joined):
        return RawRecord(ref, None, "row is not valid UTF-8", clip(_printable(joined)))
    if len(joined) > limits.max_record_bytes:
        return RawRecord(
            ref,
            None,
            f"row is {too_big(len(joined.encode('utf-8', 'surrogateescape')), limits)}",
            clip(joined),
        )
    return RawRecord(ref, row, None, joined)
