"""Prefect settings one by one: the pipeline benchmark's run under each setting, ratios to a baseline in the same run.

    python bench/prefect_levers.py --size 200 --cap 128 --latency-ms 500

Each configuration gets a fresh Prefect server on a fresh Postgres database, started with its settings, and
one child process of ``bench/pipeline.py`` (no plain baseline) with the same settings in its ``env=``; nothing
is written to this process's environment. The baseline is the benchmark's own set-up (Prefect log level
WARNING); it runs first and again last, so the spread of the two says how much of a difference is noise on a
shared machine. Printed per configuration: CPU ms per LLM call of the client, the Prefect server, Postgres
and their sum (server and Postgres including the work they finish for the run after the flow returned),
wall / ideal, each one's ratio to the mean of the two baselines, and how many task runs (and how many
Completed) the server's API shows afterwards: a lever that hides task runs from the UI is not free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import prefect_server, run_child  # noqa: E402

_BATCHED = {  # the server's background writers take up to 200 events per insert instead of 1 (recorder) / 20 (persister)
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
}
LEVERS: dict[str, dict[str, str]] = {
    "baseline": {},
    "log level INFO (Prefect's default)": {"PREFECT_LOGGING_LEVEL": "INFO"},
    "logs to API off": {"PREFECT_LOGGING_TO_API_ENABLED": "false"},
    "server: triggers off": {"PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false"},
    "server: event persister off": {"PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false"},
    "server: batched recorder only": {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200"},
    "server: batched recorder and persister": _BATCHED,
    "server: triggers off + batched": {"PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false", **_BATCHED},
    "server: events stream out off": {"PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false"},
    "all of the above off + batched": {
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
        "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
        **_BATCHED,
    },
    "baseline (again)": {},
}


def _server(r: dict[str, Any]) -> float:
    """The Prefect server's CPU during the run and while it finished the run's work afterwards."""
    return float(r["prefect_server_cpu_ms_per_call"] + r["prefect_server_drain_cpu_ms_per_call"])


def _postgres(r: dict[str, Any]) -> float:
    return float(r["postgres_cpu_ms_per_call"] + r["postgres_drain_cpu_ms_per_call"])


def _all(r: dict[str, Any]) -> float:
    return float(r["client_cpu_ms_per_call"]) + _server(r) + _postgres(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=200, help="questions per configuration")
    ap.add_argument("--cap", type=int, default=128)
    ap.add_argument("--latency-ms", type=float, default=500.0)
    ap.add_argument("--only", help="configuration names separated by ';' (the baselines always run)")
    args = ap.parse_args()
    chosen = {
        k: v
        for k, v in LEVERS.items()
        if args.only is None or k.startswith("baseline") or k in args.only.split(";")
    }

    work = Path(tempfile.mkdtemp(prefix="reasonmed-levers-"))
    print(
        f"{args.size} questions, cap {args.cap}, latency {args.latency_ms:.0f} ms; load average {os.getloadavg()}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for name, settings in chosen.items():
        with prefect_server(work, settings) as (env, _):
            r = run_child(env, work, args.size, args.cap, args.latency_ms, plain=False)
        results[name] = r
        print(f"JSON {json.dumps({'config': name, 'settings': settings, **r})}", flush=True)
        print(
            f"  {name}: all {_all(r):.2f} ms/call, wall/ideal {r['wall_over_ideal']:.2f}, failed {r['failed']}, "
            f"load {r['load_avg_1m']:.1f}",
            flush=True,
        )

    bases = [results[k] for k in results if k.startswith("baseline")]
    base_all = sum(_all(b) for b in bases) / len(bases)
    base_wall = sum(b["wall_over_ideal"] for b in bases) / len(bases)
    print(
        "\n| configuration | client | Prefect server | Postgres | all | all / baseline | wall/ideal | wall/ideal / baseline | task runs in the API (Completed) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['client_cpu_ms_per_call']:.2f} | {_server(r):.2f} | {_postgres(r):.2f} | {_all(r):.2f} | "
            f"{_all(r) / base_all:.2f} | {r['wall_over_ideal']:.2f} | {r['wall_over_ideal'] / base_wall:.2f} | "
            f"{r.get('prefect_task_runs', '-')} ({r.get('prefect_task_runs_completed', '-')}) |"
        )
    print(
        f"\nCPU ms per LLM call (server and Postgres including what they did for the run after the flow returned, until the server idled); ratios to the mean of the {len(bases)} baselines; load average at the end {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
