"""Peak memory of a Parquet ingest: the crafted files of issue 24 and an honest large file.

    python bench/parquet_memory.py [--honest-mb 1024] [--code DIR] [--only unused|cell|honest] [--file F]

Builds, in a temporary folder: ``unused.parquet`` (4,096 rows and one unused 100 KB column, ~19 KB on
disk), ``cell.parquet`` (three rows, one of them with a 30 MB cell, ~2.5 KB) and, unless ``--honest-mb 0``,
an honest file of that many MB (distinct exam-style questions with contexts and five options, pyarrow's
defaults). Each file is ingested into a fresh SQLite database by a child process (``--code DIR``: the
``reasonmed`` package to import, e.g. an older commit unpacked with ``git archive``), which reports its own
peak RSS (``VmHWM`` of /proc/self/status, Linux: ``ru_maxrss`` would count the parent's pages copied by
fork before exec), and its baseline (the same after its imports, before the ingest; the database is
migrated by another process first). Prints one line per file: rows read, stored, rejected, the largest stored metadata, the
database size, the wall time and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_VOCABULARY = (
    "patient presents with acute chronic pain fever cough dyspnea history examination reveals elevated "
    "serum levels blood pressure heart rate temperature respiratory abdominal tenderness laboratory "
    "findings show normal increased decreased left right lower upper quadrant mild severe weeks days "
    "months year-old man woman child infant mg dL mmHg treatment therapy diagnosis management initial "
    "next best step most likely cause mechanism of action drug receptor enzyme inhibitor infection "
    "renal hepatic cardiac pulmonary neurologic hematologic biopsy imaging ultrasound radiograph CT MRI"
)
_WORDS = _VOCABULARY.split()


def _row(i: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"q{i}",
        "question": f"Question {i}: which option is right?",
        "options": '["alpha", "beta", "gamma"]',
        "answer": "B",
        **extra,
    }


def write_unused(path: Path) -> None:
    """4,096 rows whose ``blob`` column (mapped to no field) holds the same 100 KB text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    blob = "x" * 100_000
    pq.write_table(pa.Table.from_pylist([_row(i, blob=blob) for i in range(4096)]), path, compression="zstd")


def write_cell(path: Path) -> None:
    """Three rows; the middle one's ``note`` (mapped to no field) is a 30 MB text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_row(0, note="short"), _row(1, note="z" * (30 << 20)), _row(2, note="short")]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd", use_dictionary=False)


def write_honest(path: Path, megabytes: int, seed: int = 7) -> int:
    """Distinct exam-style rows (~2.5 KB of text each) until the file holds ``megabytes`` MB; returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("context", pa.string()),
            ("options", pa.list_(pa.string())),
            ("answer", pa.string()),
            ("subject", pa.string()),
        ]
    )
    n, chunk = 0, 20_000
    with pq.ParquetWriter(path, schema) as w:
        while path.stat().st_size < megabytes * 1_000_000:
            rows = []
            for i in range(n, n + chunk):
                rows.append(
                    {
                        "id": f"h{i}",
                        "question": f"Case {i}: " + " ".join(rng.choices(_WORDS, k=60)) + "?",
                        "context": " ".join(rng.choices(_WORDS, k=330)),
                        "options": [" ".join(rng.choices(_WORDS, k=4)) + f" {i}{lab}" for lab in "ABCDE"],
                        "answer": "ABCDE"[i % 5],
                        "subject": rng.choice(_WORDS),
                    }
                )
            w.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += chunk
    return n


_MIGRATE = "import sys; from reasonmed.db import migrate; migrate.upgrade(sys.argv[1])"
_CHILD = """
import json, sys, time
from pathlib import Path
from sqlalchemy import create_engine, text
from reasonmed.ingest.service import ingest_file

def hwm():
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

path, db = Path(sys.argv[1]), Path(sys.argv[2])
url = f"sqlite:///{db}"
engine = create_engine(url)
with engine.connect():
    pass
import pyarrow.parquet  # what any reader imports: part of the baseline
baseline = hwm()
t = time.perf_counter()
s = ingest_file(engine, path, "parquet")
seconds = time.perf_counter() - t
with engine.connect() as c:
    meta = c.execute(text("SELECT max(length(metadata)) FROM questions")).scalar()
    reasons = [r[0][:90] for r in c.execute(text("SELECT reason FROM ingest_errors LIMIT 3"))]
print(json.dumps({"read": s.read, "stored": s.inserted, "rejected": s.rejected, "meta": meta,
                  "reasons": reasons, "seconds": round(seconds, 1), "peak_rss_mb": round(hwm() / 1024, 1),
                  "baseline_mb": round(baseline / 1024, 1)}))
"""


def measure(path: Path, code: Path, workdir: Path) -> dict[str, object]:
    """Ingest ``path`` in a child process importing ``reasonmed`` from ``code``; its result and peak RSS."""
    db = workdir / f"{path.stem}.db"
    db.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_HOME": str(workdir / "prefect")}
    subprocess.run([sys.executable, "-c", _MIGRATE, f"sqlite:///{db}"], env=env, cwd=workdir, check=True)
    t = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(db)],
        env=env,
        cwd=workdir,  # not the repository: `python -c` imports from its working folder first
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait()
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    result.update(
        file=path.name,
        file_bytes=path.stat().st_size,
        db_bytes=db.stat().st_size if db.exists() else 0,
        wall=round(time.perf_counter() - t, 1),
        exit=proc.returncode,
    )
    db.unlink(missing_ok=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--honest-mb", type=int, default=1024, help="size of the honest file (0: none)")
    ap.add_argument("--code", type=Path, default=REPO, help="folder holding the reasonmed package to measure")
    ap.add_argument("--only", choices=("unused", "cell", "honest"), action="append")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--file", type=Path, action="append", default=[], help="also measure this file")
    ap.add_argument("--write-honest", type=Path, help="only write the honest file here, and stop")
    args = ap.parse_args()
    if args.write_honest:
        print(f"{write_honest(args.write_honest, args.honest_mb):,} rows")
        return
    with tempfile.TemporaryDirectory(prefix="pq-mem-", dir=args.dir) as tmp:
        work = Path(tmp)
        files = list(args.file)
        if not args.only or "unused" in args.only:
            write_unused(work / "unused.parquet")
            files.append(work / "unused.parquet")
        if not args.only or "cell" in args.only:
            write_cell(work / "cell.parquet")
            files.append(work / "cell.parquet")
        if args.honest_mb and (not args.only or "honest" in args.only):
            t = time.perf_counter()
            rows = write_honest(work / "honest.parquet", args.honest_mb)
            print(f"honest.parquet: {rows:,} rows written in {time.perf_counter() - t:.0f} s", flush=True)
            files.append(work / "honest.parquet")
        for f in files:
            print(json.dumps(measure(f, args.code, work)), flush=True)


if __name__ == "__main__":
    main()
