"""Paper-scale database: build one by bulk COPY, then time what operators run against it.

    python bench/scale_db.py --scale 0.1          # 19.5k questions, 175k paths: a few minutes
    python bench/scale_db.py                      # the paper's size: 195k questions, ~1.8M paths, 370k rows
    python bench/scale_db.py --scale 0.1 --keep   # keep the database (its name is printed) for EXPLAIN by hand

The schema comes from the project's migrations, in a throwaway Postgres database. The rows follow the paper's
shape (ReasonMed: 195k questions x 9 generated paths, refinements of medium and regenerations of difficult
questions, one verdict per path, ranker scores of the correct paths, 370k accepted paths with their summaries,
one call row per model request). Texts are slices of a random medical-word stream with realistic lengths
(question ~700 characters, path ~3,000, summary ~800, verifier analysis ~300), so TOAST compresses them about
as much as real prose. Foreign keys are not checked during the load (``session_replication_role = replica``):
the rows are consistent by construction, and the figures are about reading the result, not loading it.

Measured (one process, wall time, median of ``--repeat`` runs where repeated):
- each audit view (reasonmed.db.audit_repo.AUDIT_VIEWS): its first page of 50 rows in its stable order, and
  its full count; the plan's sequential scans of large tables are listed;
- claiming the next shard of 200 (reasonmed.db.claims_repo.claim_questions): with every training question
  pending (before any outcome exists), and late in the run (5% pending behind 95% finished), each beside
  the claim's SQL as it was before migration 0011 (LEGACY_CLAIM), in the same process;
- ``reasonmed show`` of an accepted, a rejected and a pending question (engine, schema check, queries,
  rendering to a terminal);
- the contamination scan an export runs, and the export of the accepted rows (reasonmed.export.service.
  export_dataset, Parquet and JSON Lines into a temporary folder);
- with ``--then-upgrade``: how long the upgrade took and, once the schema has the audit rollups (migration
  0017), how long refreshing them takes (what the end of every build run and the nightly run pay);
- bytes on disk per question (pg_database_size) and per table;
- the peak RSS of this process after each step (the database server's memory is not included).

The machine may be shared with other work: compare figures within one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

QUESTIONS, TEST_ITEMS = 195_000, 7_000  # training questions; benchmark test items kept for evaluation
SOURCES = [("medqa", 0.05), ("medmcqa", 0.85), ("pubmedqa", 0.05), ("mmlu", 0.05)]
GENERATORS = ["Qwen2.5-72B-Instruct", "HuatuoGPT-o1-70B", "DeepSeek-R1-Distill-Llama-70B"]
TEMPERATURES = [0.7, 0.9, 1.0]
VERIFIER, RANKER, REFINER, SUMMARIZER = (
    "Qwen2.5-72B-Instruct",
    "Qwen2.5-72B-Instruct",
    "gpt-4o-mini",
    "gpt-4o-mini",
)
STAMP = "2026-11-20 10:00:00+00"
# One prompt template per judged stage (the stage key is model + prompt sha, migration 0007).
PROMPT_SHA = {stage: f"{i:064x}" for i, stage in enumerate(("verify", "rank", "summarize"), start=1)}
PATH_SHA = {origin: f"{i:064x}" for i, origin in enumerate(("generated", "refined", "regenerated"), start=11)}
WORDS = str.split(
    "patient presents with acute chronic pain fever cough dyspnea edema anemia platelet thrombosis embolism "
    "insulin cortisol cardiac hepatic renal lesion biopsy serum enzyme marker infarct ischemia rash neuropathy "
    "valve murmur therefore because likely diagnosis treatment management first-line contraindicated option "
    "elevated decreased normal laboratory findings suggest consistent mechanism inhibits receptor pathway the "
    "of and in to is a which most step next best answer correct incorrect rules out history examination shows "
    "mg/dL mmHg bpm years-old woman man child infant pregnancy hypertension diabetes sepsis antibiotic steroid"
)


def key_of(qid: int) -> str:
    """The answer key of question ``qid`` (the build's paths know it without a lookup)."""
    return "ABCD"[qid % 4]


def _pool(rng: random.Random, chars: int) -> str:
    """A long stream of random words (with sentence breaks) that every text is sliced from."""
    out: list[str] = []
    n = 0
    while n < chars:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(8, 24))).capitalize() + "."
        out.append(sentence)
        n += len(sentence) + 1
    return " ".join(out)


class Texts:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = _pool(self.rng, 8_000_000)

    def __call__(self, mean: int) -> str:
        length = max(20, int(self.rng.gauss(mean, mean * 0.3)))
        start = self.rng.randrange(0, len(self.pool) - length)
        return self.pool[start : start + length]


class Copies:
    """Rows spooled to one temporary file per table, then COPYed table by table, each stream fed without pause.

    Not one COPY per table held open while rows are generated: a backend idle inside COPY FROM STDIN does
    not absorb ProcSignalBarriers, so every DROP DATABASE on the server would wait for the whole build.
    """

    def __init__(self, url_pg: str, columns: dict[str, str]) -> None:
        self.url_pg, self.columns = url_pg, columns
        self.files = {t: tempfile.TemporaryFile("w+", buffering=1 << 20) for t in columns}  # noqa: SIM115 (closed in close)

    def write(self, table: str, line: str) -> None:
        self.files[table].write(line)

    def close(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with psycopg.connect(self.url_pg, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            for table, f in self.files.items():
                f.seek(0)
                counts[table] = _copy(conn, table, self.columns[table], iter(f))
                f.close()
        return counts


def _copy(conn: psycopg.Connection, table: str, columns: str, rows: Iterator[str]) -> int:
    """COPY text-format lines (tab-separated, already escaped) into ``table``; returns the row count."""
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buf: list[str] = []
        for line in rows:
            buf.append(line)
            n += 1
            if len(buf) >= 5_000:
                copy.write("".join(buf))
                buf.clear()
        if buf:
            copy.write("".join(buf))
    return n


N = "\\N"
QUESTION_CHARS = {"medqa": 750, "medmcqa": 180, "pubmedqa": 1200, "mmlu": 300}  # stem (and abstract) lengths
WORK_COLUMNS = {
    "llm_calls": "id, call_key, question_id, run_id, role, endpoint, model, temperature, top_p, max_tokens, seed, n, "
    "prompt_sha256, request_id, prompt_tokens, completion_tokens, latency_ms, finish_reason, status, "
    "error_kind, error, attempts, prefect_flow_run_id, prefect_task_run_id, created_at",
    "reasoning_paths": "id, question_id, path_key, origin, role, parent_path_id, llm_call_id, run_id, endpoint, model, "
    "temperature, sample_index, generation_order, prompt_sha256, raw_text, clean_text, "
    "extracted_answer, finish_reason, prompt_tokens, completion_tokens, latency_ms, created_at",
    "verdicts": "id, path_id, question_id, llm_call_id, run_id, verifier_model, outcome, reason, raw_output, "
    "parse_attempts, created_at, prompt_sha256",
    "path_scores": "id, path_id, question_id, llm_call_id, run_id, ranker_model, score, justification, raw_output, created_at, "
    "prompt_sha256",
    "accepted_paths": "id, question_id, path_id, verdict_id, rank, run_id, created_at, dropped_reason",
    "summaries": "id, path_id, question_id, llm_call_id, run_id, summarizer_model, text, created_at, prompt_sha256",
    "question_outcomes": "id, question_id, run_id, tier, n_paths, n_correct, status, rejection_reason, n_accepted, "
    "updated_at, simulated",
    "question_failures": "id, question_id, stage, failures, permanent, last_error_kind, last_error, last_run_id, "
    "first_failed_at, last_failed_at, set_aside_at, retried_at",
}


def build_questions(
    url_pg: str, rng: random.Random, text: Texts, nq: int, nt: int, runs: int
) -> dict[str, int]:
    """Runs, ``nq`` training questions and ``nt`` benchmark test items; returns rows per table."""
    counts: dict[str, int] = {}
    with psycopg.connect(url_pg, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        counts["pipeline_runs"] = _copy(
            conn,
            "pipeline_runs",
            "id, kind, status, parameters, stats, started_at",
            (f"{r}\tbuild\tcompleted\t{{}}\t{{}}\t{STAMP}\n" for r in range(1, runs + 1)),
        )

        sources = [s for s, _ in SOURCES]
        weights = [w for _, w in SOURCES]

        def questions() -> Iterator[str]:
            for qid in range(1, nq + nt + 1):
                test = qid > nq
                src = rng.choices(sources, weights)[0]
                opts = json.dumps([[k, text(40)] for k in "ABCD"])
                yield (
                    f"{qid}\t{uuid.uuid4().hex}{uuid.uuid4().hex}\t{src}\t{src}-{qid}\t{'test' if test else 'train'}\t"
                    f"{'t' if test else 'f'}\t{text(QUESTION_CHARS[src])}\t{N}\t{opts}\t{key_of(qid)}\t{{}}\t{STAMP}\n"
                )

        counts["questions"] = _copy(
            conn,
            "questions",
            "id, content_hash, source, source_id, split, is_benchmark_test, "
            "question, context, options, answer, metadata, created_at",
            questions(),
        )
    return counts


def build_work(url_pg: str, rng: random.Random, text: Texts, nq: int, runs: int) -> dict[str, int]:
    """Paths, verdicts, scores, accepted paths, summaries, outcomes, failures and calls of ``nq`` questions.

    The last 5% of the training questions are left pending (no rows), so a claim late in the run has work.
    """
    finished = int(nq * 0.95)
    ids = {
        "call": 0,
        "path": 0,
        "verdict": 0,
        "score": 0,
        "accepted": 0,
        "summary": 0,
        "outcome": 0,
        "failure": 0,
    }
    files = Copies(url_pg, WORK_COLUMNS)

    def nid(kind: str) -> int:
        ids[kind] += 1
        return ids[kind]

    def call(qid: int, run: int, role: str, model: str, key: str, temp: float, completion: int) -> int:
        cid = nid("call")
        files.write(
            "llm_calls",
            f"{cid}\tq{qid}/{key}\t{qid}\t{run}\t{role}\tvllm\t{model}\t{temp}\t0.95\t8192\t{cid}\t1\t"
            f"{uuid.uuid4().hex}{uuid.uuid4().hex}\tcmpl-{cid}\t{rng.randint(300, 900)}\t{completion}\t"
            f"{rng.uniform(2000, 40000):.1f}\tstop\tok\t{N}\t{N}\t1\t{N}\t{N}\t{STAMP}\n",
        )
        return cid

    def path(
        qid: int,
        run: int,
        key: str,
        origin: str,
        role: str,
        model: str,
        temp: float,
        parent: int | None,
        i: int,
        right: bool,
    ) -> int:
        """``right``: its final answer is the key (a path judged correct almost always has it)."""
        body = text(3000)
        answer = key_of(qid) if right else "ABCD"[(qid + 1 + i % 3) % 4]
        cid = call(qid, run, role, model, key, temp, len(body) // 4)
        pid = nid("path")
        files.write(
            "reasoning_paths",
            f"{pid}\t{qid}\t{key}\t{origin}\t{role}\t{N if parent is None else parent}\t{cid}\t{run}\tvllm\t{model}\t"
            f"{temp}\t{i % 3}\t{i}\t{PATH_SHA[origin]}\t{body} The answer is {answer}.\t{body}\t{answer}\tstop\t"
            f"{rng.randint(300, 900)}\t{len(body) // 4}\t{rng.uniform(2000, 40000):.1f}\t{STAMP}\n",
        )
        return pid

    def verdict(qid: int, run: int, pid: int, correct_p: float, roll: float) -> tuple[int, str]:
        outcome = "correct" if roll < correct_p else ("unparseable" if roll > 0.985 else "error")
        cid = call(qid, run, "verifier", VERIFIER, f"verify/{pid}", 0.0, 120)
        vid = nid("verdict")
        reason = text(300) if outcome == "error" else text(100)
        files.write(
            "verdicts",
            f"{vid}\t{pid}\t{qid}\t{cid}\t{run}\t{VERIFIER}\t{outcome}\t{reason}\t{reason}\t1\t{STAMP}\t{PROMPT_SHA['verify']}\n",
        )
        return vid, outcome

    for qid in range(1, nq + 1):
        if qid > finished:
            continue
        run = 1 + (qid * runs) // (nq + 1)
        difficulty = rng.random()  # paper: most questions easy, some medium, few difficult
        correct_p = 0.92 if difficulty < 0.70 else (0.55 if difficulty < 0.93 else 0.1)
        kept: list[tuple[int, int]] = []  # (path id, verdict id) of correct paths
        wrong: list[int] = []
        i = 0
        for model in GENERATORS:
            for temp in TEMPERATURES:
                key = f"gen/{model}/{temp}/{i % 3}"
                roll = rng.random()
                pid = path(
                    qid, run, key, "generated", "generator", model, temp, None, i, roll < correct_p * 0.99
                )
                vid, outcome = verdict(qid, run, pid, correct_p, roll)
                if outcome == "correct":
                    kept.append((pid, vid))
                else:
                    wrong.append(pid)
                i += 1
        n_correct = len(kept)
        tier = "easy" if n_correct >= 7 else ("medium" if n_correct >= 2 else "difficult")
        if tier == "medium":  # the refiner rewrites up to two wrong paths
            for j in range(2):
                roll = rng.random()
                pid = path(
                    qid, run, f"ref/{j}", "refined", "refiner", REFINER, 0.7, wrong[j], i, roll < 0.6 * 0.99
                )
                vid, outcome = verdict(qid, run, pid, 0.6, roll)
                if outcome == "correct":
                    kept.append((pid, vid))
                i += 1
        elif tier == "difficult":  # the regenerator writes three new paths
            for j in range(3):
                roll = rng.random()
                pid = path(
                    qid,
                    run,
                    f"regen/{j}",
                    "regenerated",
                    "regenerator",
                    REFINER,
                    0.7,
                    None,
                    i,
                    roll < 0.5 * 0.99,
                )
                vid, outcome = verdict(qid, run, pid, 0.5, roll)
                if outcome == "correct":
                    kept.append((pid, vid))
                i += 1
        for pid, _ in kept:  # the ranker scores every correct path
            cid = call(qid, run, "ranker", RANKER, f"rank/{pid}", 0.0, 60)
            files.write(
                "path_scores",
                f"{nid('score')}\t{pid}\t{qid}\t{cid}\t{run}\t{RANKER}\t{rng.randint(2, 5)}\t{text(150)}\t{text(200)}\t{STAMP}\t{PROMPT_SHA['rank']}\n",
            )
        take = kept[
            : 2 + (rng.random() < 0.2)
        ]  # top two (sometimes three): ~1.9 rows per question, 370k in all
        status = "accepted" if take else "rejected"
        for rank, (pid, vid) in enumerate(take):
            files.write(
                "accepted_paths", f"{nid('accepted')}\t{qid}\t{pid}\t{vid}\t{rank}\t{run}\t{STAMP}\t{N}\n"
            )
            cid = call(qid, run, "summarizer", SUMMARIZER, f"sum/{pid}", 0.0, 200)
            files.write(
                "summaries",
                f"{nid('summary')}\t{pid}\t{qid}\t{cid}\t{run}\t{SUMMARIZER}\t{text(800)}\t{STAMP}\t{PROMPT_SHA['summarize']}\n",
            )
        reason = N if take else "no correct path after regeneration"
        files.write(
            "question_outcomes",
            f"{nid('outcome')}\t{qid}\t{run}\t{tier}\t{i}\t{n_correct}\t{status}\t{reason}\t{len(take)}\t{STAMP}\tf\n",
        )
    for qid in rng.sample(range(finished + 1, nq + 1), max(1, (nq - finished) // 20)):  # a few set aside
        files.write(
            "question_failures",
            f"{nid('failure')}\t{qid}\tgenerate\t3\tt\tbad_response\t{text(120)}\t{runs}\t{STAMP}\t{STAMP}\t{STAMP}\t{N}\n",
        )

    return files.close()


def _has_finished_by(url_pg: str) -> bool:
    """The schema has migration 0011 (questions.finished_by, which the code's claim reads)."""
    with psycopg.connect(url_pg) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'questions' "
                "AND column_name = 'finished_by'"
            ).fetchone()
            is not None
        )


def finish_load(url_pg: str) -> None:
    """Sequences past the copied ids, then VACUUM ANALYZE (statistics and visibility map, as autovacuum would)."""
    with psycopg.connect(url_pg, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id' "
                "AND table_name NOT LIKE 'audit_%'"
            )
        ]
        for t in tables:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), coalesce((SELECT max(id) FROM {t}), 0) + 1, false) "
                f"WHERE pg_get_serial_sequence('{t}', 'id') IS NOT NULL"
            )
        if _has_finished_by(url_pg):
            # What the triggers on question_outcomes (0011) would have written, had COPY fired them.
            conn.execute(
                "UPDATE questions q SET finished_by = CASE WHEN o.simulated THEN 'simulated' ELSE 'real' END "
                "FROM question_outcomes o WHERE o.question_id = q.id AND o.status IN ('accepted', 'rejected') "
                "AND q.finished_by IS NULL"
            )
        conn.execute("VACUUM ANALYZE")


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall ms of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times), result


def _reset_peak() -> None:
    """Linux: start the peak-RSS counter (VmHWM) afresh, so each step's peak is its own."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb() -> float:
    """Peak RSS since the last ``_reset_peak`` (VmHWM), or of the whole process where that is unavailable."""
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seq_scans(conn: psycopg.Connection, sql: str, big: set[str]) -> list[str]:
    """Large tables the plan of ``sql`` reads in full."""
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()[0][0]["Plan"]
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in big:
            found.append(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return sorted(set(found))


def measure_views(engine: Any, url_pg: str, repeat: int) -> dict[str, dict[str, Any]]:
    from reasonmed.db.audit_repo import AUDIT_VIEWS, count_rows, view_rows

    out: dict[str, dict[str, Any]] = {}
    with psycopg.connect(url_pg, autocommit=True) as conn:
        big = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND reltuples > 100000"
            )
        }
        for view, order in AUDIT_VIEWS.items():
            _reset_peak()
            page_ms, rows = _timed(lambda v=view: view_rows(engine, v, limit=50), repeat)
            count_ms, n = _timed(lambda v=view: count_rows(engine, v), repeat)
            scans = _seq_scans(conn, f"SELECT * FROM {view} ORDER BY {order} LIMIT 50", big)
            out[view] = {
                "first_page_ms": page_ms,
                "count_ms": count_ms,
                "rows": n,
                "page_rows": len(rows),
                "seq_scans_first_page": scans,
                "peak_rss_mb": _peak_mb(),
            }
            print(
                f"  {view:<28} first 50 rows {page_ms:8.0f} ms   count {count_ms:8.0f} ms ({n:,} rows)   "
                f"peak RSS {out[view]['peak_rss_mb']:.0f} MB; seq scans of large tables: {', '.join(scans) or '-'}",
                flush=True,
            )
    return out


def measure_refresh(engine: Any, url_pg: str, repeat: int) -> dict[str, Any] | None:
    """Refreshing the rolled-up audit views (migration 0017), ``repeat`` times; None before 0017."""
    from reasonmed.db import audit_rollups

    with psycopg.connect(url_pg) as conn:
        if conn.execute("SELECT to_regclass('audit_rollups')").fetchone()[0] is None:
            return None
    _reset_peak()
    ms, states = _timed(lambda: audit_rollups.refresh_rollups(engine), repeat)
    out = {
        "refresh_ms": ms,
        "per_view_s": {s.view: s.refresh_s for s in states},
        "rows": {s.view: s.rows for s in states},
        "peak_rss_mb": _peak_mb(),
    }
    print(
        f"refresh of the audit rollups: {ms:,.0f} ms ("
        + ", ".join(f"{s.view} {s.refresh_s:.1f} s, {s.rows:,} rows" for s in states)
        + ")",
        flush=True,
    )
    return out


def view_contents(engine: Any) -> dict[str, list[dict[str, Any]]]:
    """Each view's first 1,000 rows, floats to 9 significant digits (a mean's last digits depend on the order
    the rows were summed in)."""
    from reasonmed.db.audit_repo import AUDIT_VIEWS, view_rows

    def norm(row: dict[str, Any]) -> dict[str, Any]:
        return {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in row.items()}

    return {v: [norm(r) for r in view_rows(engine, v, limit=1000)] for v in AUDIT_VIEWS}


def measure_claims(engine: Any, repeat: int, *, real_models: bool = False) -> dict[str, float]:
    """Claim the next shard of 200 (fifo), ``repeat`` times; every claim is released again afterwards, so
    a later measurement (after a migration) starts from the same state."""
    from reasonmed.db.claims_repo import claim_questions, count_pending, release_claims

    _reset_peak()
    pending = count_pending(engine)
    worker = f"bench-{uuid.uuid4().hex[:6]}"
    ms, ids = _timed(
        lambda: claim_questions(engine, worker=worker, limit=200, lease_s=600, real_models=real_models),
        max(repeat, 3),
    )
    release_claims(engine, worker=worker)
    return {"pending": pending, "claim_200_ms": ms, "claimed": len(ids), "peak_rss_mb": _peak_mb()}


# The claim's pick before migration 0011: every training question in id order, finished ones dropped by an
# anti-join against question_outcomes (O(finished questions) late in a run). Same lease, order and skips.
LEGACY_CLAIM = """
UPDATE questions SET claimed_by = %(worker)s, claim_expires_at = now() + interval '600 seconds'
WHERE id IN (
    SELECT id FROM questions
    WHERE is_benchmark_test IS false
      AND id NOT IN (SELECT question_id FROM question_outcomes WHERE status IN ('accepted', 'rejected'))
      AND id NOT IN (SELECT question_id FROM question_failures WHERE set_aside_at IS NOT NULL)
      AND (claimed_by IS NULL OR claim_expires_at < now())
    ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def measure_legacy_claim(url_pg: str, repeat: int) -> float:
    """Median ms of the pre-0011 claim SQL (one transaction each, as the code's claim), claims released."""
    worker = f"bench-legacy-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url_pg, autocommit=True) as conn:

        def claim() -> int:
            with conn.transaction():
                return len(conn.execute(LEGACY_CLAIM, {"worker": worker}).fetchall())

        ms, _ = _timed(claim, max(repeat, 3))
        conn.execute(
            "UPDATE questions SET claimed_by = NULL, claim_expires_at = NULL WHERE claimed_by = %s", (worker,)
        )
    return ms


def measure_claims_and_show(engine: Any, url: str, url_pg: str, repeat: int, figures: dict[str, Any]) -> None:
    c = figures["claim_late"] = measure_claims(engine, repeat)
    c["legacy_claim_200_ms"] = legacy = measure_legacy_claim(url_pg, repeat)
    c["real_models_claim_200_ms"] = measure_claims(engine, repeat, real_models=True)["claim_200_ms"]
    print(
        f"claim 200 with {c['pending']:,} pending behind finished questions: {c['claim_200_ms']:.1f} ms "
        f"(real models: {c['real_models_claim_200_ms']:.1f} ms; the pre-0011 claim SQL in this run: {legacy:.1f} ms; "
        f"peak RSS {c['peak_rss_mb']:.0f} MB)",
        flush=True,
    )
    sh = figures["show"] = measure_show(url, url_pg, repeat)
    print(f"reasonmed show of one question: {_show_line(sh)}", flush=True)


def measure_show(url: str, url_pg: str, repeat: int) -> dict[str, Any]:
    """``reasonmed show`` of one question as the command runs it (engine, schema check, queries, rendering
    to a terminal), for an accepted question with a refinement, a rejected one and a pending one."""
    import io

    from rich.console import Console

    from reasonmed.cli.show import engine_from_settings, load_story, print_story
    from reasonmed.db.inspect_repo import question_story
    from reasonmed.db.migrate import SchemaNotCurrent

    with psycopg.connect(url_pg) as conn:
        picks = [
            r[0]
            for r in conn.execute(
                "(SELECT question_id FROM question_outcomes WHERE status = 'accepted' AND tier = 'medium' ORDER BY question_id LIMIT 1) "
                "UNION ALL (SELECT question_id FROM question_outcomes WHERE status = 'rejected' ORDER BY question_id LIMIT 1) "
                "UNION ALL (SELECT max(id) FROM questions WHERE NOT is_benchmark_test)"
            )
        ]

    def show(qid: int) -> int:
        try:
            story = load_story(qid, url)
        except (
            SchemaNotCurrent
        ):  # built at an older revision (before --then-upgrade): the same reads, unchecked
            story = question_story(engine_from_settings(url)[1], qid)
        out = io.StringIO()
        print_story(story, Console(file=out, width=120, highlight=False, soft_wrap=False))
        return len(out.getvalue())

    _reset_peak()
    times = {qid: _timed(lambda q=qid: show(q), max(repeat, 3))[0] for qid in picks}
    return {"ms_by_question": times, "max_ms": max(times.values()), "peak_rss_mb": _peak_mb()}


def measure_export(engine: Any, scan: bool) -> dict[str, Any]:
    """The export with its contamination guard; with ``scan`` False the guard is told nothing was found
    (the scan is the slow part at scale, and this then times the export's own reading and writing)."""
    from reasonmed.contamination import scan_database
    from reasonmed.export.service import ExportOptions, export_dataset

    _reset_peak()
    t0 = time.perf_counter()
    found = scan_database(engine, only_accepted=True) if scan else {}
    scan_s, scan_peak = (time.perf_counter() - t0, _peak_mb()) if scan else (float("nan"), float("nan"))
    _reset_peak()
    out = Path(tempfile.mkdtemp(prefix="reasonmed-scale-export-"))
    try:
        t0 = time.perf_counter()
        result = export_dataset(
            engine, ExportOptions(out=str(out), formats=["parquet", "jsonl"]), contamination=lambda _: found
        )
        export_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "contamination_scan_s": scan_s,
        "export_s": export_s,
        "rows": result.counts.get("rows", result.counts),
        "counts": result.counts,
        "bytes_written": size,
        "peak_rss_mb": _peak_mb(),
        "contamination_scan_peak_rss_mb": scan_peak,
    }


def _show_line(sh: dict[str, Any]) -> str:
    return (
        ", ".join(f"question {q} {ms:.0f} ms" for q, ms in sh["ms_by_question"].items())
        + f" (peak RSS {sh['peak_rss_mb']:.0f} MB)"
    )


def sizes(url_pg: str, questions: int) -> dict[str, Any]:
    with psycopg.connect(url_pg) as conn:
        db = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = dict(
            conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC"
            )
        )
    return {"database_bytes": db, "bytes_per_question": db / questions, "tables": tables}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the paper's size (0.1 for a quick check)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions of each query (median reported)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument(
        "--no-scan",
        action="store_true",
        help="time the export without its contamination scan (slow at scale)",
    )
    ap.add_argument(
        "--database",
        help="measure this existing database (built earlier with --keep) instead of building one",
    )
    ap.add_argument(
        "--then-upgrade",
        metavar="REV",
        help="after the figures, upgrade the database to REV (a migration it does not have yet), time the "
        "views again and check each view returns the same rows: a before/after in one run",
    )
    ap.add_argument("--only-views", action="store_true", help="skip claims and export (with --database)")
    ap.add_argument(
        "--revision", default="heads", help="build the schema at this migration (default: all heads)"
    )
    ap.add_argument("--no-compare", action="store_true", help="with --then-upgrade: skip the row comparison")
    ap.add_argument("--no-export", action="store_true", help="skip the export")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    from reasonmed.db import migrate
    from reasonmed.db.engine import make_engine

    db = args.database or f"reasonmed_scale_{uuid.uuid4().hex[:8]}"
    url_pg = f"host=127.0.0.1 port=5432 user=postgres dbname={db}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    figures: dict[str, Any] = {"scale": args.scale, "database": db}
    if not args.database:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{db}"')
    engine = make_engine(url)
    try:
        if not args.database:
            migrate.upgrade(url, args.revision)
            t0 = time.perf_counter()
            rng, text = random.Random(args.seed), Texts(args.seed)
            nq, nt, runs = (
                int(QUESTIONS * args.scale),
                max(10, int(TEST_ITEMS * args.scale)),
                max(2, int(20 * args.scale)),
            )
            build_counts = build_questions(url_pg, rng, text, nq, nt, runs)
            finish_load(url_pg)
            # Every training question pending, before any outcome: the start of a run.
            figures["claim_all_pending"] = c = (
                measure_claims(engine, args.repeat) if _has_finished_by(url_pg) else {}
            )
            c["legacy_claim_200_ms"] = measure_legacy_claim(url_pg, args.repeat)
            with psycopg.connect(url_pg, autocommit=True) as conn:
                conn.execute(
                    "UPDATE questions SET claimed_by = NULL, claim_expires_at = NULL WHERE claimed_by IS NOT NULL"
                )
            build_counts |= build_work(url_pg, rng, text, nq, runs)
            finish_load(url_pg)
            figures["load_s"] = time.perf_counter() - t0
            figures["rows"] = build_counts
            print(
                f"built {db} in {figures['load_s']:.0f} s: "
                + ", ".join(f"{k} {v:,}" for k, v in build_counts.items()),
                flush=True,
            )
            c = figures["claim_all_pending"]
            print(
                f"claim 200 with every training question pending (no outcomes yet): "
                f"{c.get('claim_200_ms', float('nan')):.1f} ms (the pre-0011 claim SQL in this run: "
                f"{c['legacy_claim_200_ms']:.1f} ms)",
                flush=True,
            )
        with psycopg.connect(url_pg) as conn:
            questions = conn.execute("SELECT count(*) FROM questions").fetchone()[0]
        figures["size"] = sizes(url_pg, questions)
        s = figures["size"]
        print(
            f"database {s['database_bytes'] / 2**20:,.0f} MiB = {s['bytes_per_question'] / 1024:,.1f} KiB per question; "
            + ", ".join(f"{t} {b / 2**20:,.0f} MiB" for t, b in list(s["tables"].items())[:6]),
            flush=True,
        )
        if not args.only_views and not args.then_upgrade:
            measure_claims_and_show(engine, url, url_pg, args.repeat, figures)
        print("audit views:", flush=True)
        figures["views"] = measure_views(engine, url_pg, args.repeat)
        if args.then_upgrade:
            before = {} if args.no_compare else view_contents(engine)
            t0 = time.perf_counter()
            migrate.upgrade(url, args.then_upgrade)
            figures["upgrade_s"] = time.perf_counter() - t0
            print(f"upgraded to {args.then_upgrade} in {figures['upgrade_s']:.1f} s", flush=True)
            print(f"audit views after upgrading to {args.then_upgrade}:", flush=True)
            figures["views_after_upgrade"] = measure_views(engine, url_pg, args.repeat)
            if before:
                after = view_contents(engine)
                figures["views_changed"] = changed = [v for v in before if before[v] != after[v]]
                print(f"views whose rows changed: {', '.join(changed) or 'none'}", flush=True)
            figures["rollup_refresh"] = measure_refresh(engine, url_pg, args.repeat)
            if not args.only_views:  # the code's claim needs the upgraded schema: timed beside the old SQL
                measure_claims_and_show(engine, url, url_pg, args.repeat, figures)
        if args.only_views or args.no_export:
            return
        e = figures["export"] = measure_export(engine, scan=not args.no_scan)
        print(
            f"contamination scan {e['contamination_scan_s']:.1f} s (peak RSS {e['contamination_scan_peak_rss_mb']:.0f} MB); export of {e['counts']} in {e['export_s']:.1f} s "
            f"({e['bytes_written'] / 2**20:,.0f} MiB written, peak RSS {e['peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    finally:
        engine.dispose()
        if not args.keep and not args.database:
            with psycopg.connect(ADMIN, autocommit=True) as c, contextlib.suppress(psycopg.Error):
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
