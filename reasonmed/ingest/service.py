"""Ingest one question file into the database: idempotent, resumable, and clean of benchmark test items.

A file is identified by the sha256 of its bytes (a ``datasets`` folder or Hub dataset: of its Arrow
files, ``hf_datasets.py``). A file ingested to completion with the same read
options (source, column mapping, MedMCQA cop base, answer index base: what decides whether a record is
valid and what it says) is skipped; with other options it is read again, so a first ingest with a
wrong ``--map`` can be corrected; one whose ingest failed, was interrupted (status 'failed', with the
reason) or was killed (status still 'running') is simply scanned again. Either way the unique keys turn the rows already stored into duplicates. Benchmark test
items are flagged on the way in, and flags also reach questions stored by earlier ingests, so a test
item can never become a training sample.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from reasonmed.db import questions as db
from reasonmed.db.models import utcnow
from reasonmed.ingest.hf_datasets import open_source
from reasonmed.ingest.loaders import (
    FORMATS,
    CopBase,
    FileFormatError,
    Limits,
    LoadedRecord,
    load,
    load_dataset_rows,
    reason_kind,
    suggest_source,
    synthetic_id,
)
from reasonmed.models import Question
from reasonmed.redact import redact

Progress = Callable[[int, int | None], None]  # (records read so far, estimated total or None)
_LINE_FORMATS = ("medqa", "medmcqa", "mmlu", "jsonl", "csv")
_HASH_CHUNK = 1 << 20

__all__ = ["FileFormatError", "IngestSummary", "Limits", "ingest_file", "load_id_list"]
_CONFLICT_EXAMPLES = 5


class IngestSummary(BaseModel):
    """What one ingest of one file did."""

    file: str
    sha256: str
    source: str
    split: str
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    benchmark_test: int = Field(default=0, description="good records of this file flagged as benchmark test")
    newly_marked: int = Field(default=0, description="questions already stored that this run flagged as test")
    id_conflicts: int = Field(
        default=0, description="records whose id a question with other content already held (both kept)"
    )
    status: str = Field(default="done", description="done | failed (see error)")
    error: str | None = Field(default=None, description="why the file failed; its good records are stored")
    suggestion: str | None = Field(
        default=None, description="no record was valid: the --source that reads the file, if one does"
    )
    already_ingested: bool = False
    reread: bool = Field(default=False, description="ingested before with other read options, so read again")
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def valid(self) -> int:
        return self.inserted + self.duplicates

    @property
    def no_valid_records(self) -> bool:
        """Records were read and none was a question: almost always the wrong --source or --map."""
        return not self.already_ingested and self.read > 0 and self.valid == 0


def read_options_key(
    source: str,
    mapping: Mapping[str, str] | None,
    cop_base: CopBase,
    answer_index_base: int | None,
) -> str:
    """The options that decide how a file's records are read, as the canonical JSON stored with the file.

    The split is not one: it labels new rows but changes no record's validity, and stored rows keep theirs.
    """
    return json.dumps(
        {
            "source": source,
            "mapping": dict(sorted((mapping or {}).items())),
            "cop_base": cop_base,
            "answer_index_base": answer_index_base,
        },
        sort_keys=True,
    )


def _read_alike(state: db.IngestFileState, options: str, source: str) -> bool:
    if state.read_options is None:  # ingested before the options were recorded: only the source is known
        return state.source == source
    return state.read_options == options


def load_id_list(path: Path | str) -> set[str]:
    """Benchmark test ids from a JSON object (its keys), a JSON list, or a text file with one id per line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    text = p.read_text(encoding="utf-8-sig")
    head = text.lstrip()[:1]
    if head in ("{", "["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        items = data.keys() if isinstance(data, dict) else data
        return {str(i).strip() for i in items if str(i).strip()}
    return {s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")}


def _scan_file(path: Path) -> tuple[str, int]:
    """sha256 of the file, and its number of lines (the record estimate for progress)."""
    h, lines = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            lines += chunk.count(b"\n")
    return h.hexdigest(), lines


def _estimate(path: Path, source: str, lines: int) -> int | None:
    if source in _LINE_FORMATS:
        return lines
    if source == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return None
    return None


def _unstorable(*texts: str | None) -> str | None:
    """Why a text cannot be stored identically in Postgres and SQLite, or None."""
    for t in texts:
        if t is None:
            continue
        if "\x00" in t or "\\u0000" in t:
            return "text contains a NUL character, which PostgreSQL cannot store"
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return "text contains an unpaired surrogate (not valid Unicode)"
    return None


def _printable(text: str | None, limit: int) -> str | None:
    """Error-table text that any database stores: no NUL, no unpaired surrogates, bounded length."""
    if text is None:
        return None
    text = text[:limit].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8") if _unstorable(text) else text


_JSON = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False
)  # one encoder: json.dumps(**kw) builds one per call


def _to_row(q: Question, is_test: bool, file_id: int, now: datetime) -> db.QuestionRow | str:
    """The row to store, or the reason it cannot be stored (checked before hashing, which needs valid text)."""
    problem = _unstorable(q.source_id, q.question, q.context, q.answer, *q.options)
    if problem:
        return problem
    try:
        options = _JSON.encode(list(q.options.items()))
        metadata = _JSON.encode(q.metadata)
    except (TypeError, ValueError) as exc:
        return f"metadata is not storable as JSON ({exc})"
    problem = _unstorable(q.source_id, q.question, q.context, options, metadata)
    if problem:
        return problem
    return db.QuestionRow(
        q.content_hash,
        q.source,
        q.source_id,
        "test" if is_test else q.split,
        is_test,
        q.question,
        q.context,
        options,
        q.answer,
        metadata,
        file_id,
        now,
    )


@dataclass(slots=True)
class _Batch:
    """Rows for one transaction."""

    rows: list[db.QuestionRow] = field(default_factory=list)
    errors: list[db.ErrorRow] = field(default_factory=list)
    test_hashes: list[str] = field(default_factory=list)
    own_ids: list[bool] = field(
        default_factory=list
    )  # per row: the id came from the record, not its position
    refs: list[str] = field(default_factory=list)  # per row: its record ref, for a row the database refuses
    read: int = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)


class _Writer:
    """Writes batches in a background thread while the caller parses the next one.

    Parsing is Python-bound and most of a write is the server's work, so the two overlap (on separate
    cores when the machine has them); at most two batches exist at once, so memory stays flat. A batch
    the database refuses is written again row by row, so the one row it refuses becomes an error row
    and the others are stored; only a database that cannot be reached fails the file.
    """

    def __init__(self, engine: Engine, file_id: int, path: str, summary: IngestSummary) -> None:
        self._engine, self._file_id, self._path, self._summary = engine, file_id, path, summary
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._pending: Future[None] | None = None
        self.refused: Counter[str] = Counter()  # reason kind -> rows the database refused
        self.tail = _Batch()  # the batch being filled: written even when reading stops early
        self.conflict_examples: list[str] = []

    def submit(self, batch: _Batch) -> None:
        self.wait()  # surfaces a failed write before more is read, and bounds memory to two batches
        self._pending = self._pool.submit(self._write, batch)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def _write(self, batch: _Batch) -> None:
        try:
            with self._engine.begin() as conn:
                self._store(conn, batch, batch.rows, batch.errors, batch.test_hashes, batch.read)
        except OperationalError:
            raise
        except Exception:  # one row the database refuses (a value no rule foresaw): find it, keep the rest
            self._write_row_by_row(batch)

    def _write_row_by_row(self, batch: _Batch) -> None:
        errors = list(batch.errors)
        tests = set(batch.test_hashes)
        for i, row in enumerate(batch.rows):
            try:
                with self._engine.begin() as conn:
                    mine = _Batch(rows=[row], own_ids=[batch.own_ids[i]])
                    hashes = [row.content_hash] if row.content_hash in tests else []
                    self._store(conn, mine, [row], [], hashes, 0)
            except OperationalError:
                raise
            except Exception as exc:
                reason = f"the database refused this record ({_first_line(exc)})"
                errors.append(
                    db.ErrorRow(
                        self._file_id,
                        self._path,
                        batch.refs[i],
                        _printable(reason, 1000) or "",
                        None,
                        row.created_at,
                    )
                )
                self.refused[reason_kind(reason)] += 1
        with self._engine.begin() as conn:
            self._store(conn, _Batch(), [], errors, [], batch.read)

    def _store(
        self,
        conn: Any,
        batch: _Batch,
        rows: list[db.QuestionRow],
        errors: list[db.ErrorRow],
        test_hashes: list[str],
        read: int,
    ) -> None:
        conflicts = self._conflicts(conn, batch) if rows else 0
        inserted = db.insert_questions(conn, rows)
        db.insert_ingest_errors(conn, errors)
        marked = db.mark_benchmark_test(conn, test_hashes) if test_hashes else 0
        duplicates = len(rows) - inserted
        db.add_ingest_counts(
            conn,
            self._file_id,
            read=read,
            inserted=inserted,
            duplicates=duplicates,
            rejected=len(errors),
            id_conflicts=conflicts,
        )
        s = self._summary
        s.inserted += inserted
        s.duplicates += duplicates
        s.newly_marked += marked
        s.id_conflicts += conflicts

    def _conflicts(self, conn: Any, batch: _Batch) -> int:
        """Rows whose own id is already held by a question with other content (read before this batch is
        written, then walked in order, so a clash inside the batch counts once)."""
        rows = [r for r, own in zip(batch.rows, batch.own_ids, strict=True) if own]
        if not rows:
            return 0
        held = db.stored_hashes(conn, rows[0].source, (r.source_id for r in rows))
        n = 0
        for r in rows:
            hashes = held.setdefault(r.source_id, set())
            if hashes - {r.content_hash}:
                n += 1
                if (
                    len(self.conflict_examples) < _CONFLICT_EXAMPLES
                    and r.source_id not in self.conflict_examples
                ):
                    self.conflict_examples.append(r.source_id)
            hashes.add(r.content_hash)
        return n


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _account(summary: IngestSummary, batch: _Batch) -> None:
    summary.read += batch.read
    summary.rejected += len(batch.errors)
    summary.benchmark_test += len(batch.test_hashes)


def _first_read(it: Iterator[LoadedRecord]) -> Iterator[LoadedRecord]:
    """The stream with its first record already read, so file-level errors surface before any write."""
    first = next(it, None)
    return it if first is None else chain((first,), it)


@dataclass(frozen=True)
class _Source:
    """One source opened for ingest: a file, or a ``datasets`` folder or Hub dataset (``hf_datasets``)."""

    label: str  # what the ingest tables and messages call it: the path, or hf://datasets/OWNER/NAME
    sha256: str
    total: int | None  # records expected (progress), if known
    records: Callable[[list[str]], Iterator[LoadedRecord]]  # warnings go to the list given
    suggest: Callable[[], str | None]  # the --source that reads it, when none of its records was valid


def _open_source(
    path: Path | str,
    source: str,
    split: str,
    mapping: Mapping[str, str] | None,
    cop_base: CopBase,
    answer_index_base: int | None,
    limits: Limits,
) -> _Source:
    if source == "datasets":  # a folder or a Hub id, opened (downloaded) once for the hash and the rows
        opened = open_source(path, split)

        def rows(warnings: list[str]) -> Iterator[LoadedRecord]:
            return _first_read(
                iter(
                    load_dataset_rows(
                        opened.dataset,
                        opened.label,
                        split,
                        mapping,
                        answer_index_base,
                        limits,
                        warnings.append,
                    )
                )
            )

        return _Source(opened.label, opened.sha256, opened.rows, rows, lambda: None)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if source not in FORMATS:
        raise FileFormatError(f"unknown source {source!r} (known: {', '.join(FORMATS)})")
    sha, lines = _scan_file(p)

    def records(warnings: list[str]) -> Iterator[LoadedRecord]:
        return _first_read(
            iter(
                load(
                    p,
                    source,
                    split=split,
                    mapping=mapping,
                    cop_base=cop_base,
                    answer_index_base=answer_index_base,
                    warn=warnings.append,
                    limits=limits,
                )
            )
        )

    return _Source(
        str(p), sha, _estimate(p, source, lines), records, lambda: suggest_source(p, source, limits)
    )


def ingest_file(
    engine: Engine,
    path: Path | str,
    source: str,
    *,
    split: str = "train",
    benchmark_test_ids: set[str] | None = None,
    mapping: Mapping[str, str] | None = None,
    cop_base: CopBase = "auto",
    answer_index_base: int | None = None,
    batch_size: int = 2000,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> IngestSummary:
    """Ingest one file; see the module docstring for the idempotence and test-marking rules.

    Raises FileNotFoundError for a missing file and FileFormatError when the file as a whole cannot
    be read as ``source`` (nothing is written then). Bad records are stored in ``ingest_errors``. Once
    reading has begun the file always ends 'done' or 'failed' with the reason (returned in the summary,
    its good records stored); an interruption marks it failed before it propagates, and the next ingest
    of the file finishes it.
    """
    started = time.perf_counter()
    limits = limits or Limits()
    src = _open_source(path, source, split, mapping, cop_base, answer_index_base, limits)
    sha, total, label = src.sha256, src.total, src.label
    summary = IngestSummary(file=label, sha256=sha, source=source, split=split)
    test_ids = benchmark_test_ids or set()
    marking = split == "test" or bool(test_ids)

    def is_test(q: Question) -> bool:
        return q.split == "test" or q.source_id in test_ids

    def records() -> Iterator[LoadedRecord]:
        return src.records(summary.warnings)

    options = read_options_key(source, mapping, cop_base, answer_index_base)
    with engine.connect() as conn:
        state = db.find_ingest_file(conn, sha)
    if state is not None and state.status == "done" and _read_alike(state, options, source):
        summary.already_ingested = True
        if marking:  # an earlier ingest may have stored these as training items: flag them now
            summary.benchmark_test, summary.newly_marked = _mark_existing(
                engine, records(), is_test, batch_size
            )
        summary.seconds = time.perf_counter() - started
        return summary

    summary.reread = state is not None and state.status == "done"
    stream = records()  # file-level problems (wrong format, missing columns) raise here, before any write
    with engine.begin() as conn:
        state = db.get_or_create_ingest_file(conn, sha, label, source, split)
        db.restart_ingest_file(conn, state.id, label, source, split, options, clear_errors=summary.reread)
    file_id = state.id
    kinds: Counter[str] = Counter()
    writer = _Writer(engine, file_id, label, summary)
    error: str | None = None
    try:
        try:
            _read_into(writer, stream, summary, kinds, file_id, label, is_test, batch_size, progress, total)
        finally:
            writer.close()
    except Exception as exc:  # the file cannot be read or written on: it fails with the reason, never hangs
        error = f"stopped after {summary.read:,} record(s): {_first_line(exc)}"
    except BaseException as exc:  # interrupted: recorded, then passed on; the next ingest finishes the file
        _finish(engine, file_id, f"interrupted after {summary.read:,} record(s) ({type(exc).__name__})")
        raise
    kinds.update(writer.refused)
    summary.rejected += sum(writer.refused.values())
    if writer.conflict_examples:
        summary.warnings.append(
            f"{summary.id_conflicts:,} record(s) reuse an id held by a question with other content "
            f"(e.g. {', '.join(map(repr, writer.conflict_examples))}); both are kept"
        )
    _finish(engine, file_id, error)
    summary.status, summary.error = ("failed", error) if error else ("done", None)
    summary.rejected_by_reason = dict(kinds.most_common())
    if summary.no_valid_records:
        summary.suggestion = src.suggest()
    if progress:
        progress(summary.read, summary.read)
    summary.seconds = time.perf_counter() - started
    return summary


def _finish(engine: Engine, file_id: int, error: str | None) -> None:
    with engine.begin() as conn:
        db.finish_ingest_file(conn, file_id, error=_printable(redact(error) if error else None, 1000))


def _read_into(
    writer: _Writer,
    stream: Iterator[LoadedRecord],
    summary: IngestSummary,
    kinds: Counter[str],
    file_id: int,
    path_s: str,
    is_test: Callable[[Question], bool],
    batch_size: int,
    progress: Progress | None,
    total: int | None,
) -> None:
    """Every record of the stream into batches for the writer; a record that fails here (hashing,
    conversion) becomes its own error row like one the loader rejected."""
    batch, now = _Batch(), utcnow()
    try:
        _fill(
            writer, stream, summary, kinds, file_id, path_s, is_test, batch_size, progress, total, batch, now
        )
    finally:  # the records read before a failure are stored all the same
        _account(summary, writer.tail)
        writer.submit(writer.tail)


def _fill(
    writer: _Writer,
    stream: Iterator[LoadedRecord],
    summary: IngestSummary,
    kinds: Counter[str],
    file_id: int,
    path_s: str,
    is_test: Callable[[Question], bool],
    batch_size: int,
    progress: Progress | None,
    total: int | None,
    batch: _Batch,
    now: datetime,
) -> None:
    writer.tail = batch
    for rec in stream:
        batch.read += 1
        reason, raw = rec.error, rec.raw
        q = rec.question
        if q is not None:
            try:
                test = is_test(q)
                row = _to_row(q, test, file_id, now)
            except Exception as exc:
                row = f"record cannot be stored ({_first_line(exc)})"
            if isinstance(row, db.QuestionRow):
                batch.rows.append(row)
                batch.own_ids.append(not synthetic_id(q.source_id, rec.ref))
                batch.refs.append(_printable(rec.ref, 200) or "?")
                if test:
                    batch.test_hashes.append(row.content_hash)
                reason = None
            else:
                reason, raw = row, None
        elif reason is None:
            reason = "unreadable record"
        if reason is not None:
            batch.errors.append(
                db.ErrorRow(
                    file_id,
                    path_s,
                    _printable(rec.ref, 200) or "?",
                    _printable(reason, 1000) or "",
                    _printable(raw, 1000),
                    now,
                )
            )
            kinds[reason_kind(reason)] += 1
        if len(batch) >= batch_size:
            _account(summary, batch)
            writer.tail = _Batch()
            writer.submit(batch)
            batch, now = writer.tail, utcnow()
            if progress:
                progress(summary.read, total)


def _mark_existing(
    engine: Engine, records: Iterable[LoadedRecord], is_test: Callable[[Question], bool], batch_size: int
) -> tuple[int, int]:
    """Flag the stored copies of this file's test items; returns (test items in the file, rows changed)."""
    found = changed = 0
    hashes: list[str] = []
    for rec in records:
        if rec.question is not None and is_test(rec.question):
            found += 1
            hashes.append(rec.question.content_hash)
            if len(hashes) >= batch_size:
                with engine.begin() as conn:
                    changed += db.mark_benchmark_test(conn, hashes)
                hashes = []
    if hashes:
        with engine.begin() as conn:
            changed += db.mark_benchmark_test(conn, hashes)
    return found, changed
