"""Bounded ingest (issue 24, item 1): a small Parquet file cannot make ingest take gigabytes of memory or
store megabytes of metadata, and the record limit holds for every format.

The crafted files are built here with pyarrow, as an attacker would; the peak-memory cases run the ingest
in a child process that reports its own peak RSS (``VmHWM``) after a warm-up file and after the crafted
one, so the figure is what the crafted file cost, with margins far above what this tree measures
(docs/ingest.md) and far below what the reader took before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import reasonmed
from reasonmed.db.models import IngestError, IngestFile
from reasonmed.db.models import Question as QRow
from reasonmed.ingest.loaders import Limits, load
from reasonmed.ingest.metadata import DROPPED
from reasonmed.ingest.parquet import ITEM_BYTES, decoded_sizes
from reasonmed.ingest.service import ingest_file

MiB = 1 << 20
ROOT = Path(reasonmed.__file__).resolve().parent.parent


def _row(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "question": f"Question {i}: which option is right?",
        "options": '["alpha", "beta", "gamma"]',
        "answer": "B",
        **extra,
    }


def _write(path: Path, rows: list[dict[str, Any]], **kw: Any) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, **kw)
    return path


_CHILD = """
import json, sys
from pathlib import Path
from sqlalchemy import create_engine, text
from reasonmed.db import migrate
from reasonmed.ingest.service import ingest_file

def peak():
    status = Path("/proc/self/status").read_text()
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:"))) * 1024

warm, crafted, db = map(Path, sys.argv[1:4])
url = f"sqlite:///{db}"
migrate.upgrade(url)
engine = create_engine(url)
ingest_file(engine, warm, "parquet")
before = peak()
s = ingest_file(engine, crafted, "parquet")
with engine.connect() as c:
    meta = [json.loads(m) for (m,) in c.execute(text(
        "SELECT q.metadata FROM questions q JOIN ingest_files f ON f.id = q.ingest_file_id WHERE f.path = :p"
    ), {"p": str(crafted)})]
    errors = [tuple(r) for r in c.execute(text(
        "SELECT e.record_ref, e.reason FROM ingest_errors e JOIN ingest_files f ON f.id = e.ingest_file_id "
        "WHERE f.path = :p"), {"p": str(crafted)})]
print(json.dumps({"cost": peak() - before, "inserted": s.inserted, "rejected": s.rejected, "status": s.status,
                  "meta_bytes": max((len(json.dumps(m, ensure_ascii=False).encode()) for m in meta), default=0),
                  "meta": meta[:3], "errors": errors, "db_bytes": db.stat().st_size}))
"""


def _ingest_in_child(tmp_path: Path, crafted: Path) -> dict[str, Any]:
    """Ingest a small warm-up file, then ``crafted``, in a fresh process on SQLite; what it stored and the
    peak memory the crafted file added."""
    warm = _write(tmp_path / "warm.parquet", [_row(i) for i in range(-50, 0)])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(warm), str(crafted), str(tmp_path / "child.db")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_an_unused_100kb_column_in_4096_rows_costs_little_memory_and_no_metadata(tmp_path: Path) -> None:
    """Issue 24: this 19 KB file took 1.9 GB and left a 410 MB database (the 100 KB copied into every row's
    metadata). Now its rows are stored with metadata under the cap, the column named as left out."""
    blob = "x" * 100_000
    path = _write(tmp_path / "unused.parquet", [_row(i, blob=blob) for i in range(4096)], compression="zstd")
    assert path.stat().st_size < 64 << 10
    r = _ingest_in_child(tmp_path, path)
    assert (r["status"], r["inserted"], r["rejected"]) == ("done", 4096, 0)
    assert r["meta_bytes"] <= Limits().max_metadata_bytes
    assert r["meta"][0] == {"format": "parquet", DROPPED: {"fields": 1, "names": ["blob"]}}
    assert r["db_bytes"] < 32 * MiB, r["db_bytes"]  # 4,096 short questions, not 4,096 copies of 100 KB
    assert r["cost"] < 300 * MiB, f"the file cost {r['cost'] / MiB:.0f} MiB of peak memory"  # here: ~40


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_a_30mb_cell_is_an_error_row_and_the_rows_around_it_are_stored(tmp_path: Path) -> None:
    """Issue 24: a 2.5 KB file with one 30 MB cell stored it whole in questions.metadata. Now the record
    limit holds: that row is one error row naming its size, the rows before and after it are stored."""
    rows = [_row(0, note="short"), _row(1, note="z" * (30 * MiB)), _row(2, note="short")]
    path = _write(tmp_path / "cell.parquet", rows, compression="zstd", use_dictionary=False)
    assert path.stat().st_size < 16 << 10
    r = _ingest_in_child(tmp_path, path)
    assert (r["status"], r["inserted"], r["rejected"]) == ("done", 2, 1)
    [(ref, reason)] = r["errors"]
    assert ref == "row 2"
    assert reason.startswith("row is larger than the record limit (31,457,") and "> 1,048,576" in reason
    assert r["meta_bytes"] < 1024
    assert r["cost"] < 200 * MiB, f"the file cost {r['cost'] / MiB:.0f} MiB of peak memory"  # here: ~70


def test_one_value_shared_by_every_row_is_measured_per_row(tmp_path: Path) -> None:
    """A 2 MB value held once in a column's dictionary and referenced by 200 rows: each row is over the
    record limit (it would be 2 MB as a Python object), an error row, never converted; the rows around
    them are read."""
    big = "d" * (2 * MiB)
    rows = [_row(0)] + [_row(i, question=big) for i in range(1, 201)] + [_row(201)]
    path = _write(tmp_path / "shared.parquet", rows, compression="zstd")
    out = list(load(path, "parquet"))
    assert [r.question is not None for r in out] == [True] + [False] * 200 + [True]
    assert all((r.error or "").startswith("row is larger than the record limit (2,097,") for r in out[1:201])


def test_a_row_group_with_a_page_over_the_page_limit_is_one_error_row(tmp_path: Path, engine: Engine) -> None:
    """A row group whose pages decompress past the page limit is never handed to Arrow: its rows are one
    error row (``rows A-B``) naming the column, and the other row groups are read."""
    rows = [_row(i) for i in range(6)]
    rows[3]["question"] = "p" * (3 * MiB)
    path = _write(tmp_path / "page.parquet", rows, compression="zstd", use_dictionary=False, row_group_size=2)
    limits = Limits(max_record_bytes=8 * MiB, max_page_bytes=MiB)
    s = ingest_file(engine, path, "parquet", limits=limits)
    with Session(engine) as ses:
        ids = set(ses.scalars(select(QRow.source_id)))
        errors = [(e.record_ref, e.reason) for e in ses.scalars(select(IngestError))]
        status = ses.scalars(select(IngestFile.status)).one()
    assert ids == {"q0", "q1", "q4", "q5"}
    [(ref, reason)] = errors
    assert ref == "rows 3-4"
    assert reason.startswith("row group 2 not read: its pages decompress to 3,14")
    assert "column 'question': 3,14" in reason and "over the page limit (1,048,576" in reason
    assert (status, s.read, s.inserted, s.rejected) == ("done", 5, 4, 1)


def test_a_run_of_millions_of_list_items_in_a_few_bytes_is_not_decoded(tmp_path: Path) -> None:
    """Run-length encoding keeps 10 million null list items in a 1.5 KB file; the page headers say how
    many values a page holds, so the row group is refused before Arrow builds them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 10_000_000
    tags = pa.ListArray.from_arrays(pa.array([0, 0, n, n], pa.int32()), pa.nulls(n, pa.string()))
    table = pa.table({**{k: [_row(i)[k] for i in range(3)] for k in _row(0)}, "tags": tags})
    path = tmp_path / "rle.parquet"
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 16 << 10
    [out] = list(load(path, "parquet"))
    assert out.ref == "rows 1-3" and out.error is not None
    assert "column 'tags': 80,000,0" in out.error and "over the page limit (67,108,864" in out.error


def test_only_the_mapped_columns_and_a_few_others_are_read(tmp_path: Path) -> None:
    """A file with 100 other columns: the mapped ones are read, and the first 32 others as metadata."""
    rows = [_row(i, **{f"extra{k:03d}": k for k in range(100)}) for i in range(3)]
    path = _write(tmp_path / "wide.parquet", rows)
    warnings: list[str] = []
    out = list(load(path, "parquet", warn=warnings.append))
    assert all(r.question is not None for r in out)
    meta = out[0].question.metadata if out[0].question else {}
    assert [k for k in meta if k.startswith("extra")] == [f"extra{k:03d}" for k in range(32)]
    assert warnings == [
        "wide.parquet: 100 columns besides the mapped ones; only the first 32 are read (as metadata), the others are not"
    ]


@pytest.mark.parametrize("fmt", ["medqa", "jsonl"])
def test_metadata_over_its_cap_keeps_the_record_and_names_what_was_left_out(fmt: str, tmp_path: Path) -> None:
    """Every format: a record's other fields are kept while they fit the metadata cap; the rest are named."""
    rec = {
        "id": "m1",
        "question": "Which one?",
        "options": {"A": "alpha", "B": "beta"},
        "answer_idx": "B",
        "answer": "B",
        "small": "kept",
        "explanation": "e" * 30_000,
        "after": "kept too",
    }
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    [out] = list(load(path, fmt))
    assert out.question is not None
    meta = out.question.metadata
    assert len(json.dumps(meta, ensure_ascii=False).encode()) <= Limits().max_metadata_bytes
    assert meta["small"] == "kept" and meta["after"] == "kept too" and "explanation" not in meta
    assert meta[DROPPED] == {"fields": 1, "names": ["explanation"]}


def test_decoded_sizes_count_what_each_row_would_become() -> None:
    import pyarrow as pa

    table = pa.table(
        {
            "s": pa.array(["abc", None, "", "hello"]),
            "l": pa.array([["a", "bb"], None, [], [None]], type=pa.list_(pa.string())),
            "d": pa.array(["xx", "yyyy", None, "xx"]).dictionary_encode(),
            "st": pa.array([{"k": "v"}, {"k": None}, None, {"k": "vvv"}]),
            "n": pa.array([1, 2, None, 4], type=pa.int64()),
        }
    )
    per = {name: decoded_sizes(table.column(name).combine_chunks()).tolist() for name in table.column_names}
    assert per["s"] == [3, 0, 0, 5]
    assert per["l"] == [3 + 2 * ITEM_BYTES, 0, 0, ITEM_BYTES]
    assert per["d"] == [2, 4, 0, 2]
    assert per["st"] == [1, 0, 0, 3]
    assert per["n"] == [8, 8, 8, 8]
    sliced = table.slice(1, 3)
    assert decoded_sizes(sliced.column("s").combine_chunks()).tolist() == [0, 0, 5]
    assert decoded_sizes(sliced.column("l").combine_chunks()).tolist() == [0, 0, ITEM_BYTES]
