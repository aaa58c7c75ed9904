"""Parquet rows in bounded memory, whatever the file's compression hides.

A few KB of Parquet can decode to gigabytes: a 100 KB value stored once in a column's dictionary and
referenced by every row, or a 30 MB text compressed to a kilobyte. So the reader

- reads only the columns it is given (the loader's mapped columns and a few others for metadata),
- refuses a row group holding a page that decompresses to more than ``Limits.max_page_bytes``, from the
  page headers, before Arrow touches it (its rows become one error record),
- reads text and binary columns as Arrow dictionaries, so a value shared by many rows is decoded once,
- reads ``BATCH_ROWS`` rows at a time and measures every row in Arrow (``decoded_sizes``) before any of it
  becomes Python objects: a row over ``Limits.max_record_bytes`` is an error record, never converted,
- converts the other rows in slices of at most ``SLICE_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonmed.ingest.parquet_pages import PageHeaderError, largest_page
from reasonmed.ingest.readers import FileFormatError, Limits, RawRecord, clip, too_big

BATCH_ROWS = 64  # rows decoded by Arrow at a time
SLICE_BYTES = 4 << 20  # rows converted to Python objects at a time, by their decoded size
ITEM_BYTES = 8  # what one list or map item counts for besides its value (a list of nulls is not free)
_READ_BUFFER = 1 << 20  # pages are read through a buffer of this size, never a whole column chunk at once


def open_parquet(path: Path, read_dictionary: Sequence[str] | None = None) -> Any:
    """A ``pyarrow.parquet.ParquetFile``; FileFormatError for a file that is not Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(
            path, read_dictionary=read_dictionary, buffer_size=_READ_BUFFER, pre_buffer=False
        )
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FileFormatError(f"not a Parquet file ({exc})") from None


def parquet_columns(path: Path) -> list[str]:
    """The file's top-level column names, in file order."""
    return list(open_parquet(path).schema_arrow.names)


def _valid(arr: Any) -> np.ndarray:
    """Which values are not null, from the validity bitmap (NumPy only: no Arrow compute kernel, whose
    registry costs ~40 MB the first time it is used)."""
    bitmap = arr.buffers()[0]
    if bitmap is None or arr.null_count == 0:
        return np.ones(len(arr), bool)
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)


def _offsets(arr: Any, dtype: Any) -> np.ndarray:
    return np.frombuffer(arr.buffers()[1], dtype)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)


def decoded_sizes(arr: Any) -> np.ndarray:
    """Each value's size once decoded, in bytes, computed from Arrow's buffers (nothing becomes a Python
    object): text and binary their length, fixed-width values their width, lists and maps their items plus
    ``ITEM_BYTES`` each, structs their fields, dictionary values the size of the value they point at."""
    import pyarrow as pa

    n, t = len(arr), arr.type
    if n == 0:
        return np.zeros(0, np.int64)
    if pa.types.is_dictionary(t):
        values = decoded_sizes(arr.dictionary)
        if not len(values):
            return np.zeros(n, np.int64)
        indices = arr.indices
        dtype = np.dtype(indices.type.to_pandas_dtype())
        idx = np.frombuffer(indices.buffers()[1], dtype)[indices.offset : indices.offset + n]
        return np.where(_valid(indices), values[np.clip(idx, 0, len(values) - 1)], 0)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return np.diff(_offsets(arr, np.int32)) * _valid(arr)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return np.diff(_offsets(arr, np.int64)) * _valid(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        items = np.concatenate(([0], np.cumsum(decoded_sizes(arr.values) + ITEM_BYTES)))
        offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        return np.asarray(items[offsets[1:]] - items[offsets[:-1]], np.int64) * _valid(arr)
    if pa.types.is_fixed_size_list(t):
        k = t.list_size
        values = arr.values.slice(arr.offset * k, n * k)
        return np.asarray((decoded_sizes(values) + ITEM_BYTES).reshape(n, k).sum(axis=1), np.int64)
    if pa.types.is_struct(t):
        total = np.zeros(n, np.int64)
        for i in range(t.num_fields):
            total += decoded_sizes(arr.field(i))
        return total
    if pa.types.is_null(t):
        return np.zeros(n, np.int64)
    try:
        width = max(1, t.bit_width // 8)
    except ValueError:  # a type with no fixed width that none of the above covers: measured row by row
        return np.array([arr.slice(i, 1).nbytes for i in range(n)], np.int64)
    return np.full(n, width, np.int64)


def _first_page(chunk: Any) -> int:
    if chunk.has_dictionary_page and chunk.dictionary_page_offset:
        return int(min(chunk.dictionary_page_offset, chunk.data_page_offset))
    return int(chunk.data_page_offset)


def _oversized_page(path: Path, pf: Any, group: int, columns: Sequence[str], limits: Limits) -> str | None:
    """Why row group ``group`` cannot be decoded in bounded memory, or None when it can."""
    meta = pf.metadata.row_group(group)
    wanted = set(columns)
    with path.open("rb") as f:
        for j in range(meta.num_columns):
            chunk = meta.column(j)
            name = chunk.path_in_schema.split(".")[0]
            if name not in wanted:
                continue
            try:
                size = largest_page(f, _first_page(chunk), chunk.total_compressed_size)
            except PageHeaderError as exc:
                return f"column {name!r} cannot be read ({exc})"
            if size > limits.max_page_bytes:
                return (
                    f"column {name!r} has a page of {size:,} bytes decompressed, over the page limit "
                    f"({limits.max_page_bytes:,}; raise REASONMED_INGEST_MAX_PARQUET_PAGE_BYTES if it is genuine)"
                )
    return None


def _dictionary_paths(pf: Any, columns: Sequence[str]) -> list[str]:
    """The text and binary leaves of ``columns`` that the file stores with a dictionary in some row group,
    to be read as Arrow dictionaries (a column stored plain gains nothing from it)."""
    wanted = set(columns)
    meta = pf.metadata
    paths: set[str] = set()
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for j in range(row_group.num_columns):
            chunk = row_group.column(j)
            path = chunk.path_in_schema
            if (
                chunk.physical_type == "BYTE_ARRAY"
                and chunk.has_dictionary_page
                and path.split(".")[0] in wanted
            ):
                paths.add(path)
    return sorted(paths)


def _rows(batch: Any, sizes: np.ndarray, first: int, limits: Limits) -> Iterator[RawRecord]:
    """One batch's rows: an error record for each row over the record limit, the others converted in slices."""
    n = len(sizes)
    i = 0
    while i < n:
        if sizes[i] > limits.max_record_bytes:
            yield RawRecord(f"row {first + i}", None, f"row is {too_big(int(sizes[i]), limits)}", None)
            i += 1
            continue
        j, total = i, 0
        while j < n and sizes[j] <= limits.max_record_bytes and (j == i or total + sizes[j] <= SLICE_BYTES):
            total += int(sizes[j])
            j += 1
        try:
            rows = batch.slice(i, j - i).to_pylist()
        except Exception as exc:  # a value Arrow cannot turn into Python: these rows are lost, not the file
            problem = f"row cannot be read ({type(exc).__name__}: {clip(str(exc))[:200]})"
            rows = [None] * (j - i)
        for k, row in enumerate(rows):
            ref = f"row {first + i + k}"
            yield RawRecord(ref, row, None, None) if row is not None else RawRecord(ref, None, problem, None)
        i = j


def iter_parquet_rows(
    path: Path, columns: Sequence[str], limits: Limits | None = None
) -> Iterator[RawRecord]:
    """The rows of ``columns`` (each a dict), one row group and ``BATCH_ROWS`` rows at a time; refs count
    rows from 1. A row group with an over-large page is one error record (``rows A-B``), and reading goes
    on with the next; a file that cannot be read past some row ends with one error record."""
    limits = limits or Limits()
    pf = open_parquet(path)
    present = set(pf.schema_arrow.names)
    wanted = [c for c in columns if c in present]
    pf = open_parquet(path, _dictionary_paths(pf, wanted))
    first = 1
    for group in range(pf.metadata.num_row_groups):
        rows_in_group = pf.metadata.row_group(group).num_rows
        problem = _oversized_page(path, pf, group, wanted, limits)
        if problem:
            ref = f"rows {first}-{first + rows_in_group - 1}"
            yield RawRecord(ref, None, f"row group {group + 1} not read: {problem}", None)
            first += rows_in_group
            continue
        batches = pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=wanted)
        while True:
            try:
                batch = next(batches, None)
                if batch is None:
                    break
                sizes = np.zeros(batch.num_rows, np.int64)
                for column in batch.columns:
                    sizes += decoded_sizes(column)
            except Exception as exc:  # a corrupt row group: nothing after it can be read
                problem = (
                    f"the file cannot be read past row {first - 1} ({type(exc).__name__}: {clip(str(exc))})"
                )
                yield RawRecord(f"row {first}", None, problem, None)
                return
            yield from _rows(batch, sizes, first, limits)
            first += batch.num_rows
