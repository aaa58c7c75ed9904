"""Streaming file writers: Parquet shards in the Hugging Face layout, and JSON Lines.

Both take Arrow tables batch by batch and keep nothing but the open file, so memory stays flat however
large the dataset. Writer settings are fixed so that the same rows always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

# Fixed writer settings: part of the byte-identical re-export promise (recorded in the manifest).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["answer", "source", "model", "origin"],
    "write_statistics": True,
    "data_page_version": "1.0",
    "version": "2.6",
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ParquetShards:
    """``data/train-0000i-of-0000N.parquet``: a new shard every ``shard_rows`` rows.

    N is only known at the end, so shards are written under a temporary name and renamed by ``close``.
    """

    def __init__(self, directory: Path, schema: pa.Schema, *, shard_rows: int, row_group_rows: int) -> None:
        if shard_rows < 1 or row_group_rows < 1:
            raise ValueError("shard_rows and row_group_rows must be positive")
        self.directory = directory
        self.schema = schema
        self.shard_rows = shard_rows
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._parts: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _open(self) -> pq.ParquetWriter:
        part = self.directory / f".train-{len(self._parts):05d}.parquet.partial"
        self._parts.append(part)
        self._in_shard = 0
        return pq.ParquetWriter(part, self.schema, **PARQUET_OPTIONS)

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._writer = self._open()
            take = min(table.num_rows - offset, self.shard_rows - self._in_shard)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.row_group_rows)
            offset += take
            self._in_shard += take
            self.rows += take
            if self._in_shard >= self.shard_rows:
                self._writer.close()
                self._writer = None

    def close(self) -> list[Path]:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._parts:  # an empty dataset still gets one (empty) file carrying the schema
            self._open().close()
        n = len(self._parts)
        final = []
        for i, part in enumerate(self._parts):
            target = self.directory / f"train-{i:05d}-of-{n:05d}.parquet"
            os.replace(part, target)
            final.append(target)
        return final


class JsonLines:
    """One JSON object per line, keys in schema order, UTF-8 without ASCII escaping."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        self._f: IO[bytes] = path.open("wb")

    def write(self, table: pa.Table) -> None:
        lines = [json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) for row in table.to_pylist()]
        if lines:
            self._f.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.rows += table.num_rows

    def close(self) -> list[Path]:
        self._f.close()
        return [self.path]
