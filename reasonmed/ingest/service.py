"""Ingest one question file into the database: idempotent, resumable, and clean of benchmark test items.

A file is identified by the sha256 of its bytes. A file ingested to completion with the same read
options (source, column mapping, MedMCQA cop base, answer index base: what decides whether a record is
valid and what it says) is skipped; with other options it is read again, so a first ingest with a
wrong ``--map`` can be corrected; one whose ingest was killed (status still 'running') is simply
scanned again. Either way the unique keys turn the rows already stored into duplicates. Benchmark test
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

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from reasonmed.db import questions as db
from reasonmed.db.models import utcnow
from reasonmed.ingest.loaders import FORMATS, CopBase, FileFormatError, LoadedRecord, load, reason_kind
from reasonmed.models import Question

Progress = Callable[[int, int | None], None]  # (records read so far, estimated total or None)
_LINE_FORMATS = ("medqa", "medmcqa", "mmlu", "jsonl", "csv")
_HASH_CHUNK = 1 << 20

__all__ = ["FileFormatError", "IngestSummary", "ingest_file", "load_id_list"]


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
    already_ingested: bool = False
    reread: bool = Field(default=False, description="ingested before with other read options, so read again")
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0


def read_options_key(
    source: str, mapping: Mapping[str, str] | None, cop_base: CopBase, answer_index_base: int | None,
) -> str:
    """The options that decide how a file's records are read, as the canonical JSON stored with the file.

    The split is not one: it labels new rows but changes no record's validity, and stored rows keep theirs.
    """
    return json.dumps({"source": source, "mapping": dict(sorted((mapping or {}).items())),
                       "cop_base": cop_base, "answer_index_base": answer_index_base}, sort_keys=True)


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


def _to_row(
    q: Question, content_hash: str, is_test: bool, file_id: int, now: datetime
) -> db.QuestionRow | str:
    """The row to store, or the reason it cannot be stored."""
    try:
        options = _JSON.encode(list(q.options.items()))
        metadata = _JSON.encode(q.metadata)
    except (TypeError, ValueError) as exc:
        return f"metadata is not storable as JSON ({exc})"
    problem = _unstorable(q.source_id, q.question, q.context, options, metadata)
    if problem:
        return problem
    return db.QuestionRow(
        content_hash,
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
    read: int = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)


class _Writer:
    """Writes batches in a background thread while the caller parses the next one.

    Parsing is Python-bound and most of a write is the server's work, so the two overlap (on separate
    cores when the machine has them); at most two batches exist at once, so memory stays flat.
    """

    def __init__(self, engine: Engine, file_id: int, summary: IngestSummary) -> None:
        self._engine, self._file_id, self._summary = engine, file_id, summary
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._pending: Future[None] | None = None

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
        with self._engine.begin() as conn:
            inserted = db.insert_questions(conn, batch.rows)
            db.insert_ingest_errors(conn, batch.errors)
            marked = db.mark_benchmark_test(conn, batch.test_hashes) if batch.test_hashes else 0
            duplicates = len(batch.rows) - inserted
            db.add_ingest_counts(
                conn,
                self._file_id,
                read=batch.read,
                inserted=inserted,
                duplicates=duplicates,
                rejected=len(batch.errors),
            )
        s = self._summary
        s.inserted += inserted
        s.duplicates += duplicates
        s.newly_marked += marked


def _account(summary: IngestSummary, batch: _Batch) -> None:
    summary.read += batch.read
    summary.rejected += len(batch.errors)
    summary.benchmark_test += len(batch.test_hashes)


def _records(
    path: Path,
    source: str,
    split: str,
    mapping: Mapping[str, str] | None,
    cop_base: CopBase,
    answer_index_base: int | None,
    warnings: list[str],
) -> Iterator[LoadedRecord]:
    """The loader's stream with its first record already read, so file-level errors surface before any write."""
    it = iter(
        load(
            path,
            source,
            split=split,
            mapping=mapping,
            cop_base=cop_base,
            answer_index_base=answer_index_base,
            warn=warnings.append,
        )
    )
    first = next(it, None)
    return it if first is None else chain((first,), it)


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
) -> IngestSummary:
    """Ingest one file; see the module docstring for the idempotence and test-marking rules.

    Raises FileNotFoundError for a missing file and FileFormatError when the file as a whole cannot
    be read as ``source`` (nothing is written then). Bad records are stored in ``ingest_errors``.
    """
    started = time.perf_counter()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if source not in FORMATS:
        raise FileFormatError(f"unknown source {source!r} (known: {', '.join(FORMATS)})")
    sha, lines = _scan_file(p)
    total = _estimate(p, source, lines)
    summary = IngestSummary(file=str(p), sha256=sha, source=source, split=split)
    test_ids = benchmark_test_ids or set()
    marking = split == "test" or bool(test_ids)

    def is_test(q: Question) -> bool:
        return q.split == "test" or q.source_id in test_ids

    options = read_options_key(source, mapping, cop_base, answer_index_base)
    with engine.connect() as conn:
        state = db.find_ingest_file(conn, sha)
    if state is not None and state.status == "done" and _read_alike(state, options, source):
        summary.already_ingested = True
        if marking:  # an earlier ingest may have stored these as training items: flag them now
            records = _records(p, source, split, mapping, cop_base, answer_index_base, summary.warnings)
            summary.benchmark_test, summary.newly_marked = _mark_existing(
                engine, records, is_test, batch_size
            )
        summary.seconds = time.perf_counter() - started
        return summary

    summary.reread = state is not None and state.status == "done"
    records = _records(p, source, split, mapping, cop_base, answer_index_base, summary.warnings)
    with engine.begin() as conn:
        state = db.get_or_create_ingest_file(conn, sha, str(p), source, split)
        db.restart_ingest_file(conn, state.id, str(p), source, split, options, clear_errors=summary.reread)
    file_id, path_s = state.id, str(p)
    kinds: Counter[str] = Counter()
    writer = _Writer(engine, file_id, summary)
    try:
        batch, now = _Batch(), utcnow()
        for rec in records:
            batch.read += 1
            q = rec.question
            if q is None:
                reason, raw = rec.error or "unreadable record", rec.raw
            else:
                h = q.content_hash
                test = is_test(q)
                row = _to_row(q, h, test, file_id, now)
                if isinstance(row, db.QuestionRow):
                    batch.rows.append(row)
                    if test:
                        batch.test_hashes.append(h)
                    reason = None
                else:
                    reason, raw = row, None
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
                writer.submit(batch)
                batch, now = _Batch(), utcnow()
                if progress:
                    progress(summary.read, total)
        _account(summary, batch)
        writer.submit(batch)
    finally:
        writer.close()
    with engine.begin() as conn:
        db.finish_ingest_file(conn, file_id)
    summary.rejected_by_reason = dict(kinds.most_common())
    if progress:
        progress(summary.read, summary.read)
    summary.seconds = time.perf_counter() - started
    return summary


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
