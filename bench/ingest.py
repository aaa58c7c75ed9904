"""Bulk-ingest benchmark: questions/s, wall time and peak memory of `ingest_file` into Postgres.

    python bench/ingest.py [--n 200000] [--database-url URL] [--batch-size 2000]

Writes N synthetic MedQA-format questions to a JSONL file (streamed), migrates a throwaway Postgres
database on 127.0.0.1 (or uses --database-url, which must be migrated or migratable and is left as
is), ingests the file, and reports. It then repeats at N/4 and prints the peak-RSS ratio: ingestion
streams, so memory must not grow with the file. Each measurement runs in a child process so its
peak RSS is its own. A parse-only pass (no database) shows how much of the time is Python.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
_VOCABULARY = (
    "patient presents with acute chronic pain fever cough dyspnea history examination reveals elevated "
    "serum levels blood pressure heart rate temperature respiratory abdominal tenderness laboratory "
    "findings show normal increased decreased left right lower upper quadrant mild severe weeks days "
    "months year-old man woman child infant mg dL mmHg treatment therapy diagnosis management initial "
    "next best step most likely cause mechanism of action drug receptor enzyme inhibitor infection "
    "renal hepatic cardiac pulmonary neurologic hematologic biopsy imaging ultrasound radiograph CT MRI"
)
_WORDS = _VOCABULARY.split()


def generate(path: Path, n: int, seed: int = 7) -> None:
    """N distinct MedQA-style records (about 900 bytes each), written line by line."""
    rng = random.Random(seed)
    labels = "ABCDE"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            question = f"Case {n}/{i}: A {20 + i % 60}-year-old " + " ".join(rng.choices(_WORDS, k=90)) + "?"
            options = {lab: " ".join(rng.choices(_WORDS, k=4)) + f" {i}-{lab}" for lab in labels}
            idx = labels[i % 5]
            rec = {
                "question": question,
                "answer": options[idx],
                "options": options,
                "meta_info": "step1" if i % 2 else "step2&3",
                "answer_idx": idx,
            }
            f.write(json.dumps(rec) + "\n")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _server_cpu_s(engine: object) -> float | None:
    """CPU seconds used by this database's server processes (local Postgres only; None if unreadable)."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).scalars()
            ticks = 0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


def worker(mode: str, path: str, url: str | None, batch_size: int) -> None:
    """Child process: one measurement, printed as one JSON line."""
    from reasonmed.db.engine import make_engine
    from reasonmed.ingest.loaders import load
    from reasonmed.ingest.service import ingest_file

    t0 = time.perf_counter()
    if mode == "parse":
        n = 0
        for rec in load(path, "medqa"):
            if rec.question is not None:
                rec.question.content_hash  # noqa: B018  (the hash is part of the per-row work)
            n += 1
        out = {"read": n, "inserted": 0}
    else:
        assert url
        engine = make_engine(url)
        s = ingest_file(engine, path, "medqa", batch_size=batch_size)
        out = {
            "read": s.read,
            "inserted": s.inserted,
            "rejected": s.rejected,
            "pg_cpu_s": _server_cpu_s(engine),
        }
        engine.dispose()
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out |= {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "py_cpu_s": ru.ru_utime + ru.ru_stime}
    print(json.dumps(out))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def _child(mode: str, path: Path, url: str | None, batch_size: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", mode, "--file", str(path), "--batch-size", str(batch_size)]
    if url:
        cmd += ["--database-url", url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(n: int, workdir: Path, url: str | None, batch_size: int) -> dict[str, float]:
    from reasonmed.db import migrate

    path = workdir / f"medqa_{n}.jsonl"
    t0 = time.perf_counter()
    generate(path, n)
    gen_s = time.perf_counter() - t0
    own = url is None
    name = f"reasonmed_bench_{uuid.uuid4().hex[:8]}"
    db_url = url or f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    if own:
        _admin(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(db_url)
        parse = _child("parse", path, None, batch_size)
        result = _child("ingest", path, db_url, batch_size)
    finally:
        if own:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        path.unlink(missing_ok=True)
    result |= {
        "n": n,
        "generate_s": gen_s,
        "parse_qps": parse["read"] / parse["seconds"],
        "parse_rss_mb": parse["peak_rss_mb"],
    }
    return result


def _report(r: dict[str, float]) -> None:
    n = r["read"]
    qps = n / r["seconds"]
    print(
        f"N={int(r['n']):>8,}  inserted={int(r['inserted']):>8,}  wall={r['seconds']:6.2f}s  "
        f"{qps:>8,.0f} questions/s  peak RSS={r['peak_rss_mb']:6.1f} MiB"
    )
    pg = f"{r['pg_cpu_s'] / n * 1e6:.0f} us/question" if r.get("pg_cpu_s") is not None else "not measurable"
    print(
        f"    CPU: ingest process {r['py_cpu_s'] / n * 1e6:.0f} us/question, Postgres server {pg}; "
        f"parse+validate+hash alone: {r['parse_qps']:,.0f} q/s ({r['parse_rss_mb']:.1f} MiB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--n", type=int, default=200_000, help="questions in the large run (the small run is N/4)"
    )
    ap.add_argument("--database-url", default=None, help="ingest here instead of a throwaway database")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--worker", choices=["parse", "ingest"], help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.file, args.database_url, args.batch_size)
        return
    print(f"ingest benchmark on {os.cpu_count()} CPUs, batch size {args.batch_size}")
    with tempfile.TemporaryDirectory(prefix="reasonmed-bench-") as tmp:
        big = measure(args.n, Path(tmp), args.database_url, args.batch_size)
        _report(big)
        small = measure(max(1, args.n // 4), Path(tmp), args.database_url, args.batch_size)
        _report(small)
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    verdict = "flat" if ratio < 1.25 else "GROWS with file size"
    print(f"peak RSS ratio N / (N/4) = {ratio:.2f}  (memory {verdict})")
    qps = big["read"] / big["seconds"]
    print(f"target >= 10,000 questions/s: {'met' if qps >= 10_000 else 'NOT met'} ({qps:,.0f} q/s)")


if __name__ == "__main__":
    main()
