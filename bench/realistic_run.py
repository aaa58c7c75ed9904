"""A run shaped like a real one: replicas per role, an engine batch limit per replica, time-to-first-token plus
tokens x inter-token latency, output lengths drawn per role; one and then three orchestrator processes
sharing the claims (and, through slot_leases, each endpoint's caps).

    python bench/realistic_run.py                          # 21 replicas at 256 sequences each
    python bench/realistic_run.py --seqs 64 --window-s 90  # the same shape, a quarter of the slots

The scenario: three generator endpoints (5 replicas each) and one verifier endpoint (6 replicas; it also
ranks, refines, regenerates and summarises, as the paper's Qwen2.5-72B does), every replica a simulator
process with ``--max-num-seqs SEQS`` (requests beyond it queue inside it, as in vLLM) and every endpoint's
``max_in_flight`` equal to it. Latency = ``--ttft-ms`` + completion tokens x ``--itl-ms``; completion tokens
per role from the simulator's realistic profile (reasonmed/sim/lengths.py: paths 500-2,000, verdicts
100-300, ranks 30-80, summaries 80-200). Everything else is real: the build flow, a Prefect server on its
own Postgres database, the pipeline's Postgres database.

Each scenario ramps up (until the engines are 90% busy, or ``--ramp-s``), then measures a steady-state
window of ``--window-s``, then stops the orchestrators (SIGTERM). Printed per scenario, measured in that run:
engine utilisation per replica (time-averaged running / max_num_seqs over the window; the goal is >= 0.95),
calls/s, CPU ms per call of the orchestrators, the Prefect server and Postgres, the orchestrators' RSS,
event-loop lag p99, engine queue time, duplicate requests (must be 0), the prefix-cache hit rate, and the
orchestrator cores per 8-GPU node (two tensor-parallel-4 replicas) the CPU per call implies at this latency
shape. The machine may be shared: compare figures of one run with each other, not with another run's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, _admin, _postgres_cpu, _postgres_delta, _questions, _tree_cpu, prefect_server  # noqa: E402

sys.path.insert(0, str(REPO))

GENERATORS = ("sim/Qwen2.5-72B-Instruct", "sim/DeepSeek-R1-Distill-Llama-70B", "sim/HuatuoGPT-o1-70B")
VERIFIER = "sim/Qwen2.5-72B-Instruct-judge"
LAG_INTERVAL_S = 0.05


# --------------------------------------------------------------------------- the orchestrator process


async def _lag_monitor(path: Path) -> None:
    """Event-loop lag: how late a 50 ms sleep wakes up, one line per sample (monotonic time, lag)."""
    loop = asyncio.get_running_loop()
    with path.open("a", buffering=1 << 16) as f:
        last_flush = loop.time()
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_INTERVAL_S)
            now = loop.time()
            f.write(f"{time.monotonic():.3f} {max(0.0, now - t - LAG_INTERVAL_S):.5f}\n")
            if now - last_flush > 1.0:
                f.flush()
                last_flush = now


async def _orchestrate(config: str, questions_in_flight: int, lag_file: Path) -> None:
    from reasonmed.flows.build import build_dataset

    monitor = asyncio.create_task(_lag_monitor(lag_file))
    try:
        await build_dataset(config=config, questions_in_flight=questions_in_flight, shard_size=200)
    finally:
        monitor.cancel()


# --------------------------------------------------------------------------- the scenario


def _config(path: Path, replicas: dict[str, tuple[str, list[str]]], seqs: int) -> Path:
    common = {"max_in_flight": seqs, "timeout_s": 1800, "max_retries": 3}
    endpoints = {
        name: {"model": model, "replicas": urls, **common} for name, (model, urls) in replicas.items()
    }
    gens = [n for n in endpoints if n.startswith("gen")]
    data = {
        "endpoints": endpoints,
        "agents": {
            "generators": [{"endpoint": g, "temperatures": [0.7, 0.9, 1.0]} for g in gens],
            "verifier": {"endpoint": "verifier"},
            "ranker": {"endpoint": "verifier"},
            "refiner": {"endpoint": "verifier"},
            "regenerator": {"endpoint": "verifier"},
            "summarizer": {"endpoint": "verifier"},
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def _simulators(n: int, url: str, args: argparse.Namespace) -> Iterator[list[Any]]:
    from reasonmed.sim.launcher import SimServer

    sims: list[Any] = []
    try:
        for _ in range(n):
            sims.append(
                SimServer(
                    questions_db=url,
                    base_latency_ms=args.ttft_ms,
                    per_token_ms=args.itl_ms,
                    max_num_seqs=args.seqs,
                    length_profile="realistic",
                ).start()
            )
        yield sims
    finally:
        for s in sims:
            s.stop()


def _lag_p99(files: list[Path], t0: float, t1: float) -> float:
    lags = []
    for f in files:
        if f.exists():
            for line in f.read_text().splitlines():
                t, lag = line.split()
                if t0 <= float(t) <= t1:
                    lags.append(float(lag))
    if not lags:
        return math.nan
    lags.sort()
    return lags[min(len(lags) - 1, int(0.99 * len(lags)))]


def scenario(orchestrators: int, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from reasonmed.db import migrate
    from reasonmed.db.engine import get_engine
    from reasonmed.ingest.service import ingest_file

    db = f"reasonmed_real_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{db}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate.upgrade(url)
        qfile = work / f"questions_{orchestrators}.jsonl"
        _questions(qfile, args.questions, seed=orchestrators)
        ingest_file(get_engine(url), qfile, "medqa")
        gen_n, ver_n = args.generator_replicas, args.verifier_replicas
        with _simulators(3 * gen_n + ver_n, url, args) as sims:
            groups = {f"gen{i}": (GENERATORS[i], sims[i * gen_n : (i + 1) * gen_n]) for i in range(3)} | {
                "verifier": (VERIFIER, sims[3 * gen_n :])
            }
            cfg = _config(
                work / f"pipeline_{orchestrators}.yaml",
                {k: (m, [s.base_url for s in group]) for k, (m, group) in groups.items()},
                args.seqs,
            )
            slots = args.seqs * len(sims)
            # a question in generation has 3 requests on each generator: gen_n x seqs / 3 questions fill the
            # generators; as many again are verifying, ranking and summarising
            in_flight = args.questions_in_flight or 2 * gen_n * args.seqs // 3
            lag_files = [work / f"lag_{orchestrators}_{i}.txt" for i in range(orchestrators)]
            child_env = {**env, "REASONMED_DATABASE_URL": url}
            for i in range(orchestrators):
                cmd = [
                    sys.executable,
                    __file__,
                    "--orchestrator",
                    str(cfg),
                    str(-(-in_flight // orchestrators)),
                    str(lag_files[i]),
                ]
                log = (work / f"orchestrator_{orchestrators}_{i}.log").open("wb")
                procs.append(subprocess.Popen(cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT))
            ps = [psutil.Process(p.pid) for p in procs]
            server = psutil.Process(int(env["BENCH_PREFECT_SERVER_PID"]))
            dbs = (db, env["BENCH_PREFECT_DB"])

            t_start = time.monotonic()
            while time.monotonic() - t_start < args.ramp_s:
                time.sleep(2.0)
                running = sum(s.metrics()["running"] for s in sims)
                print(
                    f"  ramp {time.monotonic() - t_start:4.0f} s: {running:.0f}/{slots} engine slots busy",
                    flush=True,
                )
                if running >= 0.9 * slots or any(p.poll() is not None for p in procs):
                    break
            ramp_s = time.monotonic() - t_start
            before = [s.metrics() for s in sims]
            for s in sims:
                s.reset_metrics()
            t0 = time.monotonic()
            c0 = sum(_tree_cpu(p) for p in ps)
            s0, pg0 = _tree_cpu(server), _postgres_cpu(dbs)
            time.sleep(args.window_s)
            t1 = time.monotonic()
            c1 = sum(_tree_cpu(p) for p in ps)
            s1, pg1 = _tree_cpu(server), _postgres_cpu(dbs)
            rss_mb = [p.memory_info().rss / 2**20 for p in ps]
            after = [s.metrics() for s in sims]
            window = t1 - t0
            calls = sum(m['requests_total{outcome="ok"}'] for m in after)
            util = {
                k: [after[sims.index(s)]["running_time_avg"] / args.seqs for s in group]
                for k, (_m, group) in groups.items()
            }
            queued = sum(m["engine_queued_total"] for m in after)
            queue_s = sum(m["engine_queue_seconds_total"] for m in after)
            cpu_orch = (c1 - c0) / calls if calls else math.nan
            cpu_server = (s1 - s0) / calls if calls else math.nan
            cpu_pg = _postgres_delta(pg0, pg1) / calls if calls else math.nan
            mean_latency = sum(m["running_time_avg"] for m in after) * window / calls if calls else math.nan
            per_replica_full = args.seqs / mean_latency if mean_latency else math.nan  # calls/s at 100%
            out = {
                "orchestrators": orchestrators,
                "replicas": len(sims),
                "seqs": args.seqs,
                "ramp_s": ramp_s,
                "window_s": window,
                "calls": calls,
                "calls_per_s": calls / window,
                "utilisation": {
                    k: {"min": min(v), "median": statistics.median(v), "mean": statistics.mean(v)}
                    for k, v in util.items()
                },
                "utilisation_all": statistics.mean(u for v in util.values() for u in v),
                "orchestrator_cpu_ms_per_call": 1000 * cpu_orch,
                "prefect_server_cpu_ms_per_call": 1000 * cpu_server,
                "postgres_cpu_ms_per_call": 1000 * cpu_pg,
                "orchestrator_rss_mb": rss_mb,
                "event_loop_lag_p99_ms": 1000 * _lag_p99(lag_files, t0, t1),
                "engine_queued": queued,
                "engine_queue_s_per_call": queue_s / calls if calls else math.nan,
                "duplicate_requests": sum(m["duplicate_requests_total"] for m in before)
                + sum(m["duplicate_requests_total"] for m in after),
                "prefix_cache_hit_rate": sum(m["prefix_cache_hits_total"] for m in after)
                / max(1.0, sum(m["prefix_cache_queries_total"] for m in after)),
                "mean_call_s": mean_latency,
                # an 8-GPU node = two tensor-parallel-4 replicas of a 70B-class model, each at full batch
                "orchestrator_cores_per_node": 2 * per_replica_full * (cpu_orch + cpu_server + cpu_pg),
                "load_avg_1m": os.getloadavg()[0],
            }
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
            return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        get_engine(url).dispose()
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _print(r: dict[str, Any]) -> None:
    u = r["utilisation"]
    print(
        f"{r['orchestrators']} orchestrator(s), {r['replicas']} replicas x {r['seqs']}: "
        f"{r['calls_per_s']:.1f} calls/s over {r['window_s']:.0f} s (ramp {r['ramp_s']:.0f} s; mean call {r['mean_call_s']:.1f} s)\n"
        f"  engine utilisation: all {r['utilisation_all']:.3f}; "
        + "; ".join(f"{k} min {v['min']:.3f} median {v['median']:.3f}" for k, v in u.items())
        + f"\n  CPU ms/call: orchestrators {r['orchestrator_cpu_ms_per_call']:.2f}, Prefect server "
        f"{r['prefect_server_cpu_ms_per_call']:.2f}, Postgres {r['postgres_cpu_ms_per_call']:.2f}; "
        f"RSS {', '.join(f'{m:.0f}' for m in r['orchestrator_rss_mb'])} MB; event-loop lag p99 "
        f"{r['event_loop_lag_p99_ms']:.1f} ms\n"
        f"  engine queue: {r['engine_queued']:.0f} requests waited, {r['engine_queue_s_per_call'] * 1000:.1f} ms/call; "
        f"duplicate requests {r['duplicate_requests']:.0f}; prefix-cache hit rate {r['prefix_cache_hit_rate']:.3f}\n"
        f"  implies {r['orchestrator_cores_per_node']:.2f} orchestrator cores per 8-GPU node (2 replicas at full batch, "
        f"this latency shape); load average {r['load_avg_1m']:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--orchestrators", default="1,3", help="orchestrator processes per scenario, one scenario each"
    )
    ap.add_argument("--generator-replicas", type=int, default=5, help="replicas of each of the 3 generators")
    ap.add_argument("--verifier-replicas", type=int, default=6)
    ap.add_argument("--seqs", type=int, default=256, help="each replica's --max-num-seqs and max_in_flight")
    ap.add_argument("--ttft-ms", type=float, default=500.0, help="time to first token")
    ap.add_argument("--itl-ms", type=float, default=40.0, help="inter-token latency (per completion token)")
    ap.add_argument("--questions", type=int, default=6000)
    ap.add_argument(
        "--questions-in-flight", type=int, default=0, help="all orchestrators together (0: from --seqs)"
    )
    ap.add_argument("--ramp-s", type=float, default=240.0)
    ap.add_argument("--window-s", type=float, default=120.0)
    ap.add_argument("--orchestrator", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.orchestrator:
        config, in_flight, lag = args.orchestrator
        asyncio.run(_orchestrate(config, int(in_flight), Path(lag)))
        return
    work = Path(tempfile.mkdtemp(prefix="reasonmed-realistic-"))
    with prefect_server(work, {"REASONMED_CLAIM_LEASE_S": "600"}) as (env, _pid):
        for k in (int(x) for x in args.orchestrators.split(",")):
            r = scenario(k, args, env, work)
            _print(r)
            print("JSON " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
