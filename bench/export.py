"""Export benchmark: wall time and peak memory of exporting 370,000 accepted rows to Parquet.

    python bench/export.py [--rows 370000] [--formats parquet] [--keep]
    python bench/export.py --rows 370000 --formats parquet,jsonl --contamination off --before REF
    python bench/export.py --database NAME --formats parquet,jsonl --contamination off --before REF


Fills a throwaway Postgres database on 127.0.0.1 with synthetic accepted questions (two accepted paths
each, ~3 KB chains of thought, ~0.5 KB summaries, verdicts, summaries and outcomes; plus benchmark-test
questions that must be skipped) through COPY, then runs `export_dataset` in a child process so the peak
RSS is the export's own. Targets on a 2-core machine: <= 60 s wall, < 1 GiB peak RSS. The database and
the output are removed afterwards unless --keep. By default the export is timed twice: without and with
the contamination guard (``reasonmed.contamination.find_contaminated``), whose cost is its own.

With ``--before REF`` the same database is exported alternately by that commit (checked out with ``git
worktree``, its own ``bench/export.py`` child running its own code) and by this tree, ``--rounds`` times
each, and this tree's wall time is printed as a ratio to the earlier commit's, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from checkout import worktree  # noqa: E402

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
_VOCAB = [
    "patient",
    "presents",
    "with",
    "acute",
    "chronic",
    "pain",
    "fever",
    "cough",
    "dyspnea",
    "history",
    "examination",
    "reveals",
    "elevated",
    "serum",
    "levels",
    "blood",
    "pressure",
    "heart",
    "rate",
    "temperature",
    "respiratory",
    "abdominal",
    "tenderness",
    "laboratory",
    "findings",
    "show",
    "normal",
    "increased",
    "decreased",
    "left",
    "right",
    "lower",
    "upper",
    "quadrant",
    "mild",
    "severe",
    "weeks",
    "days",
    "months",
    "year-old",
    "man",
    "woman",
    "child",
    "infant",
    "mg",
    "dL",
    "mmHg",
    "treatment",
    "therapy",
    "diagnosis",
    "management",
    "initial",
    "next",
    "best",
    "step",
    "most",
    "likely",
    "cause",
    "mechanism",
    "of",
    "action",
    "drug",
    "receptor",
    "enzyme",
    "inhibitor",
    "infection",
    "renal",
    "hepatic",
    "cardiac",
    "pulmonary",
    "neurologic",
    "hematologic",
    "biopsy",
    "imaging",
    "ultrasound",
    "radiograph",
    "CT",
    "MRI",
    "therefore",
    "option",
    "rules",
    "out",
    "because",
    "consistent",
    "inconsistent",
    "pathophysiology",
    "anatomy",
    "presentation",
    "differential",
    "excluded",
    "supports",
    "finding",
]
MODELS = ["Qwen2.5-72B-Instruct", "DeepSeek-R1-Distill-Llama-70B", "HuatuoGPT-o1-70B"]
SOURCES = [("medmcqa", 0.9), ("medqa", 0.06), ("pubmedqa", 0.02), ("mmlu", 0.02)]
THRESHOLD_S, THRESHOLD_RSS = 60.0, 1024**3


def _pool(rng: random.Random, n: int, words: int) -> list[str]:
    return [" ".join(rng.choices(_VOCAB, k=words)) + "." for _ in range(n)]


def fill(url: str, rows: int, seed: int = 11) -> dict[str, int]:
    """COPY synthetic data in: rows/2 accepted questions x 2 accepted paths, plus benchmark-test items."""
    import psycopg

    rng = random.Random(seed)
    sentences = _pool(rng, 20_000, 14)  # ~100 chars each: chains of thought are built from these
    now = datetime.now(UTC)
    n_q = rows // 2
    n_bench = max(10, n_q // 100)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        run_id = conn.execute(
            "INSERT INTO pipeline_runs (kind, status, config_hash, parameters, stats, started_at) "
            "VALUES ('build', 'completed', %s, '{}', '{}', %s) RETURNING id",
            ("b" * 64, now),
        ).fetchone()[0]
        with conn.cursor() as cur:
            with cur.copy(
                "COPY questions (id, content_hash, source, source_id, split, is_benchmark_test, question, "
                "context, options, answer, metadata, created_at) FROM STDIN"
            ) as cp:
                for qid in range(1, n_q + n_bench + 1):
                    src = rng.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0]
                    bench = qid > n_q
                    if src == "pubmedqa":
                        opts = [["yes", "yes"], ["no", "no"], ["maybe", "maybe"]]
                        ctx = " ".join(rng.choices(sentences, k=12))
                    else:
                        opts = [[lab, " ".join(rng.choices(_VOCAB, k=4))] for lab in "ABCD"]
                        ctx = None
                    # Distinct stems of random words (like real, mostly unrelated questions), so the
                    # contamination guard sees a realistic overlap with the benchmark-test items.
                    q = f"Q{qid}: A {20 + qid % 60}-year-old " + " ".join(rng.choices(_VOCAB, k=40)) + "?"
                    cp.write_row(
                        (
                            qid,
                            uuid.uuid4().hex * 2,
                            src,
                            f"{src}-{qid}",
                            "test" if bench else "train",
                            bench,
                            q,
                            ctx,
                            json.dumps(opts),
                            opts[qid % len(opts)][0],
                            "{}",
                            now,
                        )
                    )
            with cur.copy(
                "COPY reasoning_paths (id, question_id, path_key, origin, role, run_id, endpoint, model, "
                "temperature, sample_index, generation_order, prompt_sha256, raw_text, clean_text, "
                "created_at) FROM STDIN"
            ) as cp:
                for pid in range(1, 2 * (n_q + n_bench) + 1):
                    qid = (pid + 1) // 2
                    text = "\n".join(" ".join(rng.choices(sentences, k=6)) for _ in range(5))  # ~3 KB
                    model = MODELS[pid % 3]
                    cp.write_row(
                        (
                            pid,
                            qid,
                            f"gen/{model}/{pid % 2}",
                            "generated",
                            "generator",
                            run_id,
                            model,
                            model,
                            0.7 + 0.1 * (pid % 3),
                            0,
                            pid % 2,
                            "0" * 64,
                            text,
                            text,
                            now,
                        )
                    )
            with cur.copy(
                "COPY verdicts (id, path_id, question_id, verifier_model, prompt_sha256, outcome, reason, "
                "parse_attempts, created_at) FROM STDIN"
            ) as cp:
                for pid in range(1, 2 * (n_q + n_bench) + 1):
                    cp.write_row(
                        (
                            pid,
                            pid,
                            (pid + 1) // 2,
                            "Qwen2.5-72B-Instruct",
                            "1" * 64,
                            "correct",
                            "sound",
                            1,
                            now,
                        )
                    )
            with cur.copy(
                "COPY accepted_paths (id, question_id, path_id, verdict_id, rank, run_id, created_at) "
                "FROM STDIN"
            ) as cp:
                for pid in range(1, 2 * (n_q + n_bench) + 1):
                    cp.write_row((pid, (pid + 1) // 2, pid, pid, (pid + 1) % 2, run_id, now))
            with cur.copy(
                "COPY summaries (id, path_id, question_id, summarizer_model, prompt_sha256, text, created_at) "
                "FROM STDIN"
            ) as cp:
                for pid in range(1, 2 * (n_q + n_bench) + 1):
                    cp.write_row(
                        (
                            pid,
                            pid,
                            (pid + 1) // 2,
                            "gpt-4o-mini",
                            "2" * 64,
                            " ".join(rng.choices(sentences, k=5)),
                            now,
                        )
                    )
            with cur.copy(
                "COPY question_outcomes (id, question_id, run_id, tier, n_paths, n_correct, status, "
                "n_accepted, updated_at) FROM STDIN"
            ) as cp:
                for qid in range(1, n_q + n_bench + 1):
                    cp.write_row((qid, qid, run_id, "easy", 9, 6, "accepted", 2, now))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"questions": n_q, "benchmark_questions": n_bench, "rows": 2 * n_q, "db_bytes": size}


def child(url: str, out: str, formats: list[str], contamination: bool) -> None:
    """Runs in its own process: the export, timed, with this process's peak RSS."""
    import reasonmed
    from reasonmed.db.engine import make_engine
    from reasonmed.export.service import ExportOptions, default_contamination_check, export_dataset

    engine = make_engine(url)
    timings: dict[str, float] = {}

    def check(e):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return default_contamination_check(e) if contamination else {}
        finally:
            timings["contamination_s"] = round(time.perf_counter() - t, 2)

    t0 = time.perf_counter()
    result = export_dataset(engine, ExportOptions(out=out, formats=formats), contamination=check)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data_bytes = sum(f["bytes"] for f in result.manifest["files"])
    print(
        json.dumps(
            {
                "wall_s": round(wall, 2),
                "peak_rss_bytes": rss,
                "counts": result.counts,
                "bytes_written": data_bytes,
                "code": str(Path(reasonmed.__file__).resolve().parent.parent),
                **timings,
            }
        )
    )


def _export(tree: Path, url: str, out: Path, formats: str, guard: bool) -> dict[str, Any]:
    """One export in a child process running the code of ``tree``."""
    cmd = [sys.executable, str(tree / "bench" / "export.py"), "--formats", formats, "--child", url, str(out)]
    if not guard:
        cmd.append("--no-contamination")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree)
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"export failed:\n{done.stderr[-4000:]}")
    r: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    r["cpu_s"] = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime  # the child's, imports included
    if "code" in r and Path(r["code"]) != tree.resolve():
        raise SystemExit(f"the export from {tree} ran the code in {r['code']}")
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=370_000)
    p.add_argument("--formats", default="parquet")
    p.add_argument(
        "--contamination",
        choices=["both", "on", "off"],
        default="both",
        help="time the export with the contamination guard, without it, or both (default)",
    )
    p.add_argument("--no-contamination", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="keep the database filled for this run")
    p.add_argument(
        "--database",
        metavar="NAME",
        help="export this existing database on 127.0.0.1 instead of filling one (e.g. bench/scale_db.py --keep's)",
    )
    p.add_argument("--before", metavar="REF", help="also export with this earlier commit, alternately")
    p.add_argument("--rounds", type=int, default=2, help="exports per tree with --before (default 2)")
    p.add_argument("--child", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if args.child:
        child(args.child[0], args.child[1], formats, not args.no_contamination)
        return

    import psycopg

    from reasonmed.db import migrate

    name = args.database or f"reasonmed_bench_export_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    out = Path(tempfile.mkdtemp(prefix="reasonmed-bench-export-"))
    if not args.database:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if not args.database:
            migrate.upgrade(url)
            t = time.perf_counter()
            info = fill(url, args.rows)
            print(
                f"filled {info['rows']:,} accepted rows ({info['questions']:,} questions, "
                f"{info['benchmark_questions']:,} benchmark-test) in {time.perf_counter() - t:.1f} s; "
                f"database {info['db_bytes'] / 1024**2:,.0f} MiB",
                flush=True,
            )
        ok = True
        modes = {"both": [False, True], "on": [True], "off": [False]}[args.contamination]
        with contextlib.ExitStack() as stack:
            trees = [("this tree", REPO)]
            if args.before:
                trees = [("before", stack.enter_context(worktree(args.before)))] + trees
            walls: dict[str, list[float]] = {label: [] for label, _ in trees}
            for guard in modes:
                for _ in range(args.rounds if args.before else 1):
                    for label, tree in trees:
                        r = _export(tree, url, out, args.formats, guard)
                        walls[label].append(r["wall_s"])
                        mode = "with the contamination guard" if guard else "without the contamination guard"
                        print(
                            f"[{label}] export {mode}: {r['counts']['ReasonMed']:,} rows x 3 datasets "
                            f"({args.formats}) = {r['bytes_written'] / 1024**2:,.0f} MiB of files"
                        )
                        print(
                            f"  wall: {r['wall_s']:.1f} s (target <= {THRESHOLD_S:.0f} s)"
                            + f"; CPU of the child process {r['cpu_s']:.1f} s"
                            + (
                                f", of which the contamination check {r['contamination_s']:.1f} s"
                                if guard
                                else ""
                            )
                        )
                        print(
                            f"  peak RSS: {r['peak_rss_bytes'] / 1024**2:,.0f} MiB "
                            f"(target < {THRESHOLD_RSS / 1024**2:,.0f} MiB)",
                            flush=True,
                        )
                        if label == "this tree":
                            ok = ok and r["wall_s"] <= THRESHOLD_S and r["peak_rss_bytes"] < THRESHOLD_RSS
            if args.before:
                before, after = (sum(walls[k]) / len(walls[k]) for k in ("before", "this tree"))
                print(
                    f"wall, mean of {len(walls['this tree'])} runs each: before ({args.before}) {before:.1f} s, "
                    f"this tree {after:.1f} s; this tree / before = {after / before:.2f}"
                )
        print("targets met" if ok else "TARGET MISSED")
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.keep and not args.database:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept: database {name}")


if __name__ == "__main__":
    main()
