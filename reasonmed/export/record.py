"""The database record of one export: its dataset_versions row and one dataset_samples row per path.

Everything happens in one transaction that commits only after the files are published, so a failed
export leaves no version behind. On Postgres the version is reserved up front and the samples go in by
one COPY per batch while the files are being written (the server checks each batch's foreign keys as
its COPY ends, overlapping the export; a concurrent export waits on the version number instead of
colliding at the end). On SQLite the samples
wait in a spool file and are written at the end, so the single write lock is held for seconds only.
"""

from __future__ import annotations

import contextlib
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType
from typing import Any, BinaryIO

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reasonmed.db import export_repo
from reasonmed.export.assemble import SourceRow

SampleIds = tuple[int, int, int, int]  # question, path, verdict, summary


def sample_ids(rows: Iterable[SourceRow]) -> Iterator[SampleIds]:
    return ((r.question_id, r.path_id, r.verdict_id, r.summary_id) for r in rows)


class SampleSpool:
    """Sample ids on disk (8 bytes per id) until the final transaction: memory stays flat."""

    def __init__(self) -> None:
        self._f: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 (closed by ``close``)

    def add(self, ids: Iterable[SampleIds]) -> None:
        buf = array("q")
        for row in ids:
            buf.extend(row)
        buf.tofile(self._f)

    def batches(self, size: int = 10_000) -> Iterator[list[SampleIds]]:
        self._f.seek(0)
        while True:
            buf = array("q")
            with contextlib.suppress(EOFError):  # a short last batch still lands in ``buf``
                buf.fromfile(self._f, 4 * size)
            if not buf:
                return
            yield [(buf[i], buf[i + 1], buf[i + 2], buf[i + 3]) for i in range(0, len(buf), 4)]

    def close(self) -> None:
        self._f.close()


class VersionRecord:
    """``with VersionRecord(...) as rec``: add samples, ``reserve`` the number, ``finish``; commits on exit."""

    def __init__(self, engine: Engine, *, run_id: int | None, created_at: datetime) -> None:
        self.engine = engine
        self.run_id = run_id
        self.created_at = created_at
        self.live = engine.dialect.name == "postgresql"
        self.version: int | None = None
        self.n_samples = 0
        self._version_id: int | None = None
        self._stack = ExitStack()
        self._session: Session | None = None
        self._spool: SampleSpool | None = None

    def __enter__(self) -> VersionRecord:
        self._session = self._stack.enter_context(Session(self.engine, expire_on_commit=False))
        self._stack.enter_context(self._session.begin())
        if self.live:
            self.reserve()
        else:
            self._spool = self._stack.enter_context(contextlib.closing(SampleSpool()))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._stack.__exit__(exc_type, exc, tb)

    def add(self, rows: Sequence[SourceRow]) -> None:
        if self.live:
            assert self._session is not None and self._version_id is not None  # reserved on entering
            export_repo.copy_samples(self._session, self._version_id, sample_ids(rows))
        elif self._spool is not None:
            self._spool.add(sample_ids(rows))
        self.n_samples += len(rows)

    def reserve(self) -> int:
        """The version number (previous max + 1), with its row; Postgres does this on entering."""
        if self.version is None:
            assert self._session is not None
            self.version = export_repo.next_version(self._session)
            self._version_id = export_repo.create_version(
                self._session,
                version=self.version,
                run_id=self.run_id,
                location="",
                config_hash=None,
                manifest={},
                n_samples=0,
                created_at=self.created_at,
            )
        return self.version

    def finish(self, *, location: str, manifest: dict[str, Any], config_hash: str | None) -> None:
        """Complete the samples and the version row (still uncommitted: publish, then leave the block)."""
        assert self._session is not None and self._version_id is not None
        if self._spool is not None:
            export_repo.insert_samples(self._session, self._version_id, self._spool.batches())
        export_repo.update_version(
            self._session,
            self._version_id,
            location=location,
            manifest=manifest,
            n_samples=self.n_samples,
            config_hash=config_hash,
        )
