"""The largest page of a Parquet column chunk, read from its page headers before Arrow decompresses any.

Arrow decompresses a whole page at a time, and a page header may promise any size up to 2 GiB: a few KB of
zstd hold a 30 MB (or a 1.9 GB) text. The file footer gives only a column chunk's total, so the headers are
walked here (Thrift compact protocol, the only one Parquet uses) and a row group holding an over-large page
is never handed to Arrow.
"""

from __future__ import annotations

from typing import BinaryIO

_HEADER_MAX = 16 << 20  # a page header (statistics included) longer than this is not read
_READ = 64 << 10

# Thrift compact protocol type ids.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)


class PageHeaderError(ValueError):
    """A page header that cannot be read (cut short, not Thrift, or larger than any real one)."""


class _Cursor:
    """Bytes of a file from an offset, read in small pieces as a header is decoded."""

    def __init__(self, f: BinaryIO, offset: int) -> None:
        self._f, self._start = f, offset
        self._buf = b""
        self.pos = 0

    def _need(self, n: int) -> None:
        while self.pos + n > len(self._buf):
            if len(self._buf) >= _HEADER_MAX:
                raise PageHeaderError(f"a page header is longer than {_HEADER_MAX:,} bytes")
            self._f.seek(self._start + len(self._buf))
            more = self._f.read(_READ)
            if not more:
                raise PageHeaderError("the file ends inside a page header")
            self._buf += more

    def byte(self) -> int:
        self._need(1)
        self.pos += 1
        return self._buf[self.pos - 1]

    def skip(self, n: int) -> None:
        if n < 0 or n > _HEADER_MAX:
            raise PageHeaderError(f"a page header field of {n:,} bytes")
        self._need(n)
        self.pos += n

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise PageHeaderError("a varint longer than 64 bits")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)


def _skip(c: _Cursor, kind: int, depth: int) -> None:
    """Move past one value of Thrift compact type ``kind``."""
    if depth > 32:
        raise PageHeaderError("page header nested too deeply")
    if kind in (_TRUE, _FALSE):
        return
    if kind == _BYTE:
        c.skip(1)
    elif kind in (_I16, _I32, _I64):
        c.varint()
    elif kind == _DOUBLE:
        c.skip(8)
    elif kind == _BINARY:
        c.skip(c.varint())
    elif kind in (_LIST, _SET):
        head = c.byte()
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size = c.varint()
        for _ in range(size):
            if elem in (_TRUE, _FALSE):
                c.skip(1)  # inside a collection a boolean takes a byte
            else:
                _skip(c, elem, depth + 1)
    elif kind == _MAP:
        size = c.varint()
        if size:
            types = c.byte()
            for _ in range(size):
                _skip(c, types >> 4, depth + 1)
                _skip(c, types & 0x0F, depth + 1)
    elif kind == _STRUCT:
        _struct(c, depth + 1, {})
    else:
        raise PageHeaderError(f"unknown Thrift type {kind}")


def _struct(
    c: _Cursor, depth: int, wanted: dict[int, int], counted: frozenset[int] = frozenset()
) -> dict[int, int]:
    """Read a struct, keeping the integer fields whose ids are keys of ``wanted``; for the struct fields
    whose ids are in ``counted``, their own field 1 (a data page header's num_values) under that id."""
    last = 0
    while True:
        head = c.byte()
        if head == 0:
            return wanted
        kind, delta = head & 0x0F, head >> 4
        field = last + delta if delta else c.zigzag()
        last = field
        if field in wanted and kind in (_I16, _I32, _I64):
            wanted[field] = c.zigzag()
        elif field in counted and kind == _STRUCT:
            wanted[field] = _struct(c, depth + 1, {1: 0})[1]
        else:
            _skip(c, kind, depth)


VALUE_BYTES = 8  # what one value of a page costs decoded besides its bytes (offsets, validity): RLE runs
# of nulls or repeats take a few bytes on disk for any number of values


def read_page_header(f: BinaryIO, offset: int) -> tuple[int, int, int, int]:
    """(uncompressed size, compressed size, header length, values) of the page whose header starts at
    ``offset`` (values: a data page's count, 0 for other pages)."""
    c = _Cursor(f, offset)
    fields = _struct(c, 0, {2: -1, 3: -1, 5: 0, 8: 0}, frozenset({5, 8}))
    if fields[2] < 0 or fields[3] < 0 or fields[5] < 0 or fields[8] < 0:
        raise PageHeaderError("a page header without its sizes, or with negative ones")
    return fields[2], fields[3], c.pos, fields[5] + fields[8]


def largest_page(f: BinaryIO, start: int, total_compressed: int) -> int:
    """What the largest page of one column chunk costs decoded: its uncompressed size plus ``VALUE_BYTES``
    per value (``start``: the chunk's first page, dictionary page included; ``total_compressed``: the
    chunk's size, headers included)."""
    largest, pos, end = 0, start, start + total_compressed
    while pos < end:
        uncompressed, compressed, header, values = read_page_header(f, pos)
        largest = max(largest, uncompressed + VALUE_BYTES * values)
        pos += header + compressed
    return largest
