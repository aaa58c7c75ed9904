"""Pipeline throughput: N questions x 9 paths through the real build flow, endpoint cap 256, latency 1 s.

    python bench/pipeline.py                 # 500 and 2,000 questions, one child process each
    python bench/pipeline.py --sizes 200 --latency-ms 500

Everything is real except the model: a Prefect server on its own Postgres database (the set-up deploy/
documents for large runs), the pipeline's Postgres database, and the project's simulator over HTTP
emulating an engine with 1 s latency. All agents share one endpoint "sim" with a cap of 256 requests in
flight; the generator asks 9 paths per question (3 temperatures x 3 samples, one request each).

Printed, measured in one run:
- utilisation = the simulator's time-averaged requests in flight / cap (from its /metrics);
- wall / ideal, ideal = LLM calls x latency / cap;
- CPU ms per LLM call of the client process (Prefect client, orchestration, HTTP, database driver), and
  separately of the Prefect server and of the Postgres backends serving the two bench databases;
- peak RSS of the client, 500 vs 2,000 questions (flat = memory does not grow with the run);
- in the JSON line only: what the Prefect server and Postgres still spent for the run after the flow returned
  (until the server idles) and how many task runs, and Completed ones, the server's API then shows
  (bench/prefect_levers.py adds the first to the totals and prints the second);
- a plain-client baseline in the same child, against the same simulator: as many chat calls as the project
  made, from one aiohttp session behind an asyncio.Semaphore at the same cap (generation prompts of the same
  questions), then project wall / plain wall and the CPU ms per call of both. The machine may be shared,
  so only ratios measured within one run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
WORDS = [
    "cardiac",
    "hepatic",
    "renal",
    "acute",
    "chronic",
    "lesion",
    "biopsy",
    "serum",
    "enzyme",
    "marker",
    "infarct",
    "ischemia",
    "fever",
    "rash",
    "neuropathy",
    "valve",
    "murmur",
    "dyspnea",
    "edema",
    "anemia",
    "platelet",
    "thrombosis",
    "embolism",
    "insulin",
    "cortisol",
]


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _questions(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            opts = {k: " ".join(rng.choices(WORDS, k=3)) + f" {k}{i}" for k in "ABCD"}
            stem = (
                f"Case {i}: a patient presents with "
                + " ".join(rng.choices(WORDS, k=40))
                + ". What is the best next step?"
            )
            f.write(
                json.dumps(
                    {"id": f"b{i}", "question": stem, "options": opts, "answer_idx": rng.choice("ABCD")}
                )
                + "\n"
            )


def _config(path: Path, sim_url: str, cap: int, timeout_s: float) -> Path:
    ep = {
        "base_url": sim_url,
        "model": "sim/bench-model",
        "max_in_flight": cap,
        "timeout_s": timeout_s,
        "supports_n": False,
    }
    data = {
        "endpoints": {"sim": ep},
        "agents": {
            "generators": [{"endpoint": "sim", "temperatures": [0.7, 0.9, 1.0], "paths_per_temperature": 3}],
            "verifier": {"endpoint": "sim"},
            "ranker": {"endpoint": "sim"},
            "refiner": {"endpoint": "sim"},
            "regenerator": {"endpoint": "sim"},
            "summarizer": {"endpoint": "sim"},
        },
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _postgres_cpu(databases: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend serving ``databases`` (other databases on a shared server
    are left out); a backend that exits between two readings loses its share, so this is a lower bound."""
    with psycopg.connect(ADMIN, autocommit=True) as c:
        pids = [
            r[0]
            for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (list(databases),))
        ]
    out: dict[int, float] = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _postgres_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of a process and its children (the Prefect server runs uvicorn in-process today)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


def _settle(
    server: psutil.Process,
    databases: tuple[str, ...],
    idle_cpu_s: float = 0.05,
    min_s: float = 6.0,
    limit_s: float = 90.0,
) -> tuple[float, float, float]:
    """Wait at least ``min_s`` (longer than the server's event writers' 5 s flush interval, so a batch they hold
    back is written too) and then (at most ``limit_s`` in all) until the Prefect server uses less than
    ``idle_cpu_s`` CPU in a second; the wait and the CPU seconds the server and the two databases' Postgres
    backends used meanwhile."""
    t0, s0, p0 = time.monotonic(), _tree_cpu(server), _postgres_cpu(databases)
    last = s0
    while time.monotonic() - t0 < limit_s:
        time.sleep(1.0)
        now = _tree_cpu(server)
        if now - last < idle_cpu_s and time.monotonic() - t0 >= min_s:
            break
        last = now
    return time.monotonic() - t0, _tree_cpu(server) - s0, _postgres_delta(p0, _postgres_cpu(databases))


def _task_runs_recorded(api_url: str) -> dict[str, int]:
    """Task runs the Prefect server shows (its API, as the UI reads it), all and Completed: what a setting that
    makes task runs cheaper must leave intact."""
    import httpx

    completed = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    return {
        "prefect_task_runs": int(httpx.post(f"{api_url}/task_runs/count", json={}, timeout=30).json()),
        "prefect_task_runs_completed": int(
            httpx.post(f"{api_url}/task_runs/count", json=completed, timeout=30).json()
        ),
    }


async def plain_client(base_url: str, cap: int, calls: int, qfile: Path) -> None:
    """The baseline: ``calls`` chat requests from one aiohttp session, at most ``cap`` in flight, no orchestration."""
    import aiohttp

    from reasonmed.prompts import context_block, format_options, get_template

    template = get_template("generate")
    records = [json.loads(line) for line in qfile.read_text().splitlines()]
    bodies = [
        json.dumps(
            {
                "model": "sim/bench-model",
                "temperature": 0.7,
                "max_tokens": 8192,
                "messages": template.render(
                    question=r["question"],
                    context_block=context_block(None),
                    options=format_options(r["options"]),
                ),
            }
        ).encode()
        for r in records
    ]
    slots = asyncio.Semaphore(cap)
    url = base_url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=cap)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def one(i: int) -> None:
            async with (
                slots,
                session.post(
                    url, data=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}
                ) as r,
            ):
                r.raise_for_status()
                await r.json()

        await asyncio.gather(*(one(i) for i in range(calls)))


def child(n: int, cap: int, latency_ms: float, work: Path, plain: bool = True) -> None:
    """One measured run in a fresh process, so its peak RSS is its own."""
    import reasonmed

    if not Path(reasonmed.__file__).resolve().is_relative_to(REPO):  # the code under test is this tree's
        raise SystemExit(f"reasonmed imported from {reasonmed.__file__}, not from {REPO}")
    from reasonmed.db import migrate
    from reasonmed.db.engine import get_engine
    from reasonmed.ingest.service import ingest_file
    from reasonmed.sim.launcher import SimServer

    db = f"reasonmed_bench_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{db}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    os.environ["REASONMED_DATABASE_URL"] = url
    try:
        migrate.upgrade(url)
        qfile = work / f"questions_{n}.jsonl"
        _questions(qfile, n, seed=n)
        ingest_file(get_engine(url), qfile, "medqa")
        with SimServer(
            questions_db=url, base_latency_ms=latency_ms, per_token_ms=0.0, max_num_seqs=cap * 4
        ) as sim:
            cfg = _config(work / "pipeline.yaml", sim.base_url, cap, timeout_s=max(30.0, latency_ms / 100))
            from reasonmed.flows.build import build_dataset

            sim_proc = psutil.Process(sim.pid)
            server = psutil.Process(int(os.environ["BENCH_PREFECT_SERVER_PID"]))
            sim.reset_metrics()
            dbs = (db, os.environ["BENCH_PREFECT_DB"])
            c0, s0, p0, sim0 = (
                time.process_time(),
                _tree_cpu(server),
                _postgres_cpu(dbs),
                sum(sim_proc.cpu_times()[:2]),
            )
            w0 = time.monotonic()
            result = asyncio.run(build_dataset(config=str(cfg), questions_in_flight=cap, shard_size=200))
            wall = time.monotonic() - w0
            client_cpu = time.process_time() - c0
            server_cpu = _tree_cpu(server) - s0
            pg_cpu = _postgres_delta(p0, _postgres_cpu(dbs))
            sim_cpu = sum(sim_proc.cpu_times()[:2]) - sim0
            # What the server still does for this run after the flow returned (events and task-run states its
            # services flush every few seconds), until it idles: counted apart, so the figures above stay
            # comparable with earlier runs, and added by bench/prefect_levers.py, where deferring work must not look free.
            drain_s, drain_cpu, drain_pg = _settle(server, dbs)
            recorded = _task_runs_recorded(os.environ["PREFECT_API_URL"])
            m = sim.metrics()
            calls = m['requests_total{outcome="ok"}']
            baseline: dict[str, float] = {}
            if plain:
                sim.reset_metrics()
                c0, s0, p0 = time.process_time(), _tree_cpu(server), _postgres_cpu(dbs)
                sim0, w0 = sum(sim_proc.cpu_times()[:2]), time.monotonic()
                asyncio.run(plain_client(sim.base_url, cap, int(calls), qfile))
                pw = time.monotonic() - w0
                pm = sim.metrics()
                baseline = {
                    "plain_calls": pm['requests_total{outcome="ok"}'],
                    "plain_wall_s": pw,
                    "plain_client_cpu_ms_per_call": 1000 * (time.process_time() - c0) / calls,
                    "plain_postgres_cpu_ms_per_call": 1000 * _postgres_delta(p0, _postgres_cpu(dbs)) / calls,
                    # The Prefect server meanwhile, no flow running: its services (the project run's backlog of
                    # events was worked off before, see _settle; at most 90 s of it). Not part of the baseline.
                    "plain_idle_prefect_server_cpu_ms_per_call": 1000 * (_tree_cpu(server) - s0) / calls,
                    "plain_simulator_cpu_ms_per_call": 1000 * (sum(sim_proc.cpu_times()[:2]) - sim0) / calls,
                    "plain_utilisation": pm["in_flight_time_avg"] / cap,
                    "project_over_plain": wall / pw,
                }
        ideal = calls * (latency_ms / 1000) / cap
        out = {
            "questions": n,
            "done": result["done"],
            "failed": result["failed"],
            "llm_calls": calls,
            "calls_per_question": calls / n,
            "wall_s": wall,
            "ideal_s": ideal,
            "wall_over_ideal": wall / ideal,
            "utilisation": m["in_flight_time_avg"] / cap,
            "peak_in_flight": m["in_flight_peak"],
            "client_cpu_ms_per_call": 1000 * client_cpu / calls,
            "prefect_server_cpu_ms_per_call": 1000 * server_cpu / calls,
            "postgres_cpu_ms_per_call": 1000 * pg_cpu / calls,
            "simulator_cpu_ms_per_call": 1000 * sim_cpu / calls,
            "drain_s": drain_s,
            "prefect_server_drain_cpu_ms_per_call": 1000 * drain_cpu / calls,
            "postgres_drain_cpu_ms_per_call": 1000 * drain_pg / calls,
            **recorded,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_avg_1m": os.getloadavg()[0],
            **baseline,
        }
        print("RESULT " + json.dumps(out), flush=True)
    finally:
        get_engine(url).dispose()
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _profiled(cmd: list[str], profile: Path | None, name: str) -> list[str]:
    """``cmd`` under ``py-spy record`` (100 samples/s, speedscope, idle frames left out) when profiling."""
    if profile is None:
        return cmd
    profile.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        str(spy),
        "record",
        "--rate",
        "100",
        "--nonblocking",
        "--format",
        "speedscope",
        "-o",
        str(profile / f"{name}.speedscope.json"),
        "--",
        *cmd,
    ]


def _python_pid(pid: int, profile: Path | None) -> int | None:
    """The Python process itself: py-spy's child when profiling (None until it has started)."""
    if profile is None:
        return pid
    kids = psutil.Process(pid).children()
    return kids[0].pid if kids else None


@contextlib.contextmanager
def prefect_server(
    work: Path, settings: dict[str, str], profile: Path | None = None
) -> Iterator[tuple[dict[str, str], int]]:
    """A Prefect server on its own fresh Postgres database, started with ``settings`` (PREFECT_* names) on top
    of the bench's defaults; yields the environment a child run needs (the same settings, the API URL, the
    server's pid and database) and the server's pid. Settings reach the server and the child through their
    ``env=`` mappings only."""
    prefect_db = f"prefect_bench_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{prefect_db}"')
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **settings,
    }
    server_cmd = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = work / f"server_{port}.log"
    server = subprocess.Popen(
        _profiled(server_cmd, profile, "prefect_server"),
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    server_pid = _python_pid(server.pid, profile)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if server_pid is None:
                    server_pid = _python_pid(server.pid, profile)
                if (
                    httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
                    and server_pid
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("Prefect server did not start: " + log.read_text()[-2000:])
            time.sleep(1)
        yield {**env, "BENCH_PREFECT_SERVER_PID": str(server_pid), "BENCH_PREFECT_DB": prefect_db}, server_pid
    finally:
        if profile and server_pid:  # py-spy writes its profile once its target has exited
            psutil.Process(server_pid).send_signal(2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=60)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        _admin(f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')


def run_child(
    env: dict[str, str],
    work: Path,
    n: int,
    cap: int,
    latency_ms: float,
    plain: bool,
    profile: Path | None = None,
    tree: Path = REPO,
) -> dict[str, Any]:
    """One measured run of ``n`` questions in a fresh child process with ``env`` (from ``prefect_server``),
    running the project's code from ``tree`` (a checkout of another commit: bench/code_levers.py)."""
    child_cmd = [
        sys.executable,
        str(tree / "bench" / "pipeline.py"),
        "--child",
        str(n),
        "--cap",
        str(cap),
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.run(
        _profiled(child_cmd + ([] if plain else ["--no-plain"]), profile, f"client_{n}"),
        env={**env, "BENCH_WORK": str(work)},
        capture_output=True,
        text=True,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"run of {n} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[7:])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000", help="question counts, one child process each")
    ap.add_argument("--cap", type=int, default=256)
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-client baseline")
    ap.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles (speedscope) of the client and the Prefect server here",
    )
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PREFECT_* or REASONMED_* setting for the Prefect server and the run (repeatable), e.g. "
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE=200",
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.cap, args.latency_ms, Path(os.environ["BENCH_WORK"]), plain=not args.no_plain)
        return

    work = Path(tempfile.mkdtemp(prefix="reasonmed-bench-"))
    settings = dict(kv.split("=", 1) for kv in args.setting)
    with prefect_server(work, settings, args.profile) as (env, server_pid):
        port = env["PREFECT_API_URL"].split(":")[-1].split("/")[0]
        print(
            f"Prefect server on Postgres at :{port}; cap {args.cap}, simulated latency {args.latency_ms:.0f} ms",
            flush=True,
        )
        results = []
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_child(
                env, work, n, args.cap, args.latency_ms, plain=not args.no_plain, profile=args.profile
            )
            results.append(r)
            print(
                f"{n:>6} questions: {r['llm_calls']:,.0f} calls ({r['calls_per_question']:.1f}/question), "
                f"wall {r['wall_s']:.0f} s vs ideal {r['ideal_s']:.0f} s -> wall/ideal {r['wall_over_ideal']:.3f}; "
                f"utilisation {r['utilisation']:.3f} (peak in flight {r['peak_in_flight']:.0f}/{args.cap}); "
                f"CPU ms/call: client {r['client_cpu_ms_per_call']:.2f}, Prefect server {r['prefect_server_cpu_ms_per_call']:.2f}, "
                f"Postgres {r['postgres_cpu_ms_per_call']:.2f}, simulator {r['simulator_cpu_ms_per_call']:.2f}; "
                f"peak RSS {r['peak_rss_mb']:.0f} MB; failed {r['failed']}",
                flush=True,
            )
            if "plain_wall_s" in r:
                print(
                    f"{'':>6} plain client, same {r['plain_calls']:,.0f} calls: wall {r['plain_wall_s']:.0f} s, "
                    f"utilisation {r['plain_utilisation']:.3f}, CPU ms/call: client {r['plain_client_cpu_ms_per_call']:.2f}, "
                    f"Postgres {r['plain_postgres_cpu_ms_per_call']:.2f}, simulator {r['plain_simulator_cpu_ms_per_call']:.2f} "
                    f"(idle Prefect server meanwhile {r['plain_idle_prefect_server_cpu_ms_per_call']:.2f}) "
                    f"-> project / plain wall {r['project_over_plain']:.2f}; "
                    f"project CPU ms/call (client + server + Postgres) "
                    f"{r['client_cpu_ms_per_call'] + r['prefect_server_cpu_ms_per_call'] + r['postgres_cpu_ms_per_call']:.2f} "
                    f"vs plain {r['plain_client_cpu_ms_per_call'] + r['plain_postgres_cpu_ms_per_call']:.2f}; "
                    f"load average (1 min) {r['load_avg_1m']:.1f}",
                    flush=True,
                )
            print("JSON " + json.dumps(r), flush=True)
        if len(results) >= 2:
            print(
                f"peak RSS ratio {results[-1]['questions']} vs {results[0]['questions']} questions: "
                f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}"
            )


if __name__ == "__main__":
    main()
