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
from typing import Any

RAW_CHARS = 500  # how much of a bad record is kept for the error table
_CHUNK = 1 << 20
_MAX_RECORD = 64 << 20  # a JSON value larger than this is treated as corrupt, not read on forever
_SURROGATE = re.compile("[\udc80-\udcff]")  # what `surrogateescape` turns invalid UTF-8 bytes into


class FileFormatError(ValueError):
    """The file as a whole cannot be read in the requested format (wrong format, missing columns)."""


@dataclass(slots=True)
class RawRecord:
    """One record before interpretation: a parsed value, or the reason it could not be parsed."""

    ref: str
    value: Any
    error: str | None
    raw: str | None


def clip(text: str) -> str:
    return text[:RAW_CHARS]


def _utf8_problem(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at position {exc.start})"


def iter_json_lines(path: Path) -> Iterator[RawRecord]:
    """JSON Lines: blank lines are skipped; refs are 1-based line numbers."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if n == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            ref = f"line {n}"
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield RawRecord(
                    ref, None, f"line is {_utf8_problem(exc)}", clip(line.decode("utf-8", "replace"))
                )
                continue
            if not text or text.isspace():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRecord(
                    ref,
                    None,
                    f"line is not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})",
                    clip(text),
                )
                continue
            if not isinstance(value, dict):
                yield RawRecord(
                    ref, None, f"line is a JSON {type(value).__name__}, not an object", clip(text)
                )
                continue
            yield RawRecord(ref, value, None, text)


class _ObjectStream:
    """Incremental reader of one top-level JSON object, yielding its members without loading the file."""

    def __init__(self, f: io.BufferedReader) -> None:
        self._f = f
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._json = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        """Append one chunk; False at end of file."""
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
        """Decode the JSON value at pos, reading more until it is complete; returns (value, start)."""
        while True:
            start = self.pos
            try:
                value, end = self._json.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                if len(self.buf) - start > _MAX_RECORD or not self.fill():
                    raise FileFormatError(f"not valid JSON ({exc.msg})") from None
                continue
            # A number (or literal) that ends exactly at the buffer end may continue in the next chunk.
            if end == len(self.buf) and not self.eof and self.fill():
                continue
            self.pos = end
            return value, start


def iter_json_object(path: Path) -> Iterator[tuple[str, RawRecord]]:
    """Members of a file holding ONE JSON object ``{key: record, ...}`` (PubMedQA), streamed.

    Yields (key, record). A member whose text holds invalid UTF-8 is an error record; broken JSON
    mid-file ends the stream with one error record, since nothing after it can be located reliably.
    """
    with path.open("rb") as f:
        s = _ObjectStream(f)  # type: ignore[arg-type]
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
            elif n:
                problem = (
                    f"expected ',' or '}}' after record {n}"
                    if ch
                    else "file ends before the closing '}' (truncated?)"
                )
                yield "", RawRecord(f"after record {n}", None, problem, None)
                return
            if ch != '"':
                ref = f"record {n + 1}" if ch else f"after record {n}"
                yield (
                    "",
                    RawRecord(ref, None, "truncated file or not valid JSON (expected a quoted key)", None),
                )
                return
            try:
                key, _ = s.decode()
                if s.skip_ws() != ":":
                    raise FileFormatError(f"expected ':' after key {key!r}")
                s.pos += 1
                s.skip_ws()
                value, start = s.decode()
            except FileFormatError as exc:
                yield "", RawRecord(f"record {n + 1}", None, str(exc), clip(s.buf[s.pos :]))
                return
            n += 1
            ref = f"record {key}"
            text = s.buf[start : s.pos]
            if _SURROGATE.search(text) or _SURROGATE.search(key):
                yield key, RawRecord(ref, None, "record is not valid UTF-8", clip(_printable(text)))
            elif not isinstance(value, dict):
                yield (
                    key,
                    RawRecord(
                        ref, None, f"record is a JSON {type(value).__name__}, not an object", clip(text)
                    ),
                )
            else:
                yield key, RawRecord(ref, value, None, text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def iter_csv_rows(path: Path, *, header: bool) -> Iterator[tuple[list[str] | None, RawRecord]]:
    """CSV rows (quoted fields may span lines); refs count data rows from 1.

    With ``header`` the first row is returned as the first item's header and never as a record.
    """
    with path.open("rb") as fb:
        text = io.TextIOWrapper(fb, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text)
        names: list[str] | None = None
        if header:
            try:
                names = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileFormatError(f"header row is not valid CSV ({exc})") from None
            if any(_SURROGATE.search(h) for h in names):
                raise FileFormatError("header row is not valid UTF-8")
            names = [h.strip() for h in names]
        n = 0
        while True:
            n += 1
            ref = f"row {n}"
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield names, RawRecord(ref, None, f"row is not valid CSV ({exc})", None)
                continue
            if not row or not any(cell.strip() for cell in row):
                continue
            joined = ",".join(row)
            if _SURROGATE.search(joined):
                yield names, RawRecord(ref, None, "row is not valid UTF-8", clip(_printable(joined)))
                continue
            yield names, RawRecord(ref, row, None, joined)


def iter_parquet_rows(path: Path, columns: list[str] | None, batch_size: int = 4096) -> Iterator[RawRecord]:
    """Parquet rows read one record batch at a time (pyarrow), so memory stays flat for any file size."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FileFormatError(f"not a Parquet file ({exc})") from None
    present = set(pf.schema_arrow.names)
    wanted = [c for c in columns if c in present] if columns is not None else None
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=wanted):
        for row in batch.to_pylist():
            n += 1
            yield RawRecord(f"row {n}", row, None, None)


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as exc:
        raise FileFormatError(f"not a Parquet file ({exc})") from None
