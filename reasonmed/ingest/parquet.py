"""Parquet rows in bounded memory, whatever the file's compression hides.

A few KB of Parquet can decode to gigabytes: a 100 KB value stored once in a column's dictionary and
referenced by every row, or a 30 MB text compressed to a kilobyte. So the reader

- reads only the columns it is given (the loader's mapped columns and a few others for metadata),
- reads each row group's page headers first (``parquet_pages``): no value decodes to more than the page
  holding it (a dictionary value, to more than its dictionary page), so the largest page of each column
  read, summed, bounds one row once decoded. A row group whose sum exceeds ``Limits.max_page_bytes`` is
  never handed to Arrow (its rows become one error record); the others are decoded a batch of rows at a
  time, as many rows (``BATCH_ROWS`` at most) as keep that bound times the rows under ``BATCH_BYTES``,
- measures every row of a batch in Arrow (``decoded_sizes``) before any of it becomes Python objects: a
  row over ``Limits.max_record_bytes`` is an error record, never converted,
- converts the other rows in slices of at most ``SLICE_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonmed.ingest.parquet_pages import PageHeaderError, largest_page
from reasonmed.ingest.readers import FileFormatError, Limits, RawRecord, clip, too_big

BATCH_ROWS = 64  # rows decoded by Arrow at a time, at most (fewer when the pages are large)
BATCH_BYTES = 128 << 20  # bound on one batch decoded: rows x (largest page per column read, summed)
SLICE_BYTES = 4 << 20  # rows converted to Python objects at a time, by their decoded size
ITEM_BYTES = 8  # what one list or map item counts for besides its value (a list of nulls is not free)
_READ_BUFFER = 1 << 20  # pages are read through a buffer of this size, never a whole column chunk at once


def open_parquet(path: Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile``; FileFormatError for a file that is not Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, buffer_size=_READ_BUFFER, pre_buffer=False)
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


def _page_sizes(path: Path, pf: Any, group: int, columns: Sequence[str]) -> dict[str, int]:
    """Per column read: the largest page of its chunk in row group ``group``, decompressed (a nested
    column: of its largest leaf). PageHeaderError for headers that cannot be read."""
    meta = pf.metadata.row_group(group)
    wanted = set(columns)
    sizes: dict[str, int] = {}
    with path.open("rb") as f:
        for j in range(meta.num_columns):
            chunk = meta.column(j)
            name = chunk.path_in_schema.split(".")[0]
            if name in wanted:
                size = largest_page(f, _first_page(chunk), chunk.total_compressed_size)
                sizes[name] = max(sizes.get(name, 0), size)
    return sizes


def _batch_rows(path: Path, pf: Any, group: int, columns: Sequence[str], limits: Limits) -> int | str:
    """How many rows of row group ``group`` to decode at a time, or why it cannot be decoded at all."""
    try:
        sizes = _page_sizes(path, pf, group, columns)
    except PageHeaderError as exc:
        return f"its page headers cannot be read ({exc})"
    total = sum(sizes.values())
    if total > limits.max_page_bytes:
        name = max(sizes, key=sizes.__getitem__)
        return (
            f"its pages decompress to {total:,} bytes (the largest page of each column read, summed; "
            f"column {name!r}: {sizes[name]:,}), over the page limit ({limits.max_page_bytes:,}; "
            "raise REASONMED_INGEST_MAX_PARQUET_PAGE_BYTES if it is genuine)"
        )
    return max(1, min(BATCH_ROWS, BATCH_BYTES // max(1, total)))


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
    """The rows of ``columns`` (each a dict), one row group and a few rows at a time; refs count rows from
    1. A row group that cannot be decoded in bounded memory is one error record (``rows A-B``), and reading
    goes on with the next; a file that cannot be read past some row ends with one error record."""
    limits = limits or Limits()
    pf = open_parquet(path)
    present = set(pf.schema_arrow.names)
    wanted = [c for c in columns if c in present]
    first = 1
    for group in range(pf.metadata.num_row_groups):
        rows_in_group = pf.metadata.row_group(group).num_rows
        batch_rows = _batch_rows(path, pf, group, wanted, limits)
        if isinstance(batch_rows, str):
            ref = f"rows {first}-{first + rows_in_group - 1}"
            yield RawRecord(ref, None, f"row group {group + 1} not read: {batch_rows}", None)
            first += rows_in_group
            continue
        batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=wanted)
        while True:
            try:
                batch = next(batches, None)
                if batch is None:
                    break
                sizes = np.zeros(batch.num_rows, np.int64)
                if 2 * batch.nbytes > limits.max_record_bytes:  # else no row of it can be over the limit
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
