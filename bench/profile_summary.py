"""Where the CPU goes, from py-spy speedscope profiles (bench/profile_pipeline.sh writes them).

    python bench/profile_summary.py PROFILE.speedscope.json [--cpu-ms-per-call 3.3] [--top 25]

py-spy records only samples of threads it sees running (not idle). On a loaded machine it takes fewer
samples than its rate asks for, so the sampled seconds undercount; the *shares* are what a profile gives.
With --cpu-ms-per-call (the process's CPU per LLM call by process accounting, which bench/pipeline.py
prints), each share is turned into ms per call.
Each sample is charged to its *owner*: the frame nearest the leaf that belongs to a package or to the
project rather than to the standard library (so asyncio or json work that Prefect asked for is Prefect's).
Printed: CPU seconds (and ms per LLM call with --calls) by owner package, by a few coarse layers, and the
functions with the most self time.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

# Leaves where a thread blocks (socket poll, selector, lock, queue, child wait). A sample there means the thread
# was woken and runnable but had no core yet: on a loaded machine the OS still reports it running. Such samples
# are shown apart, and the layer shares are given over the rest (the computing samples).
WAITS = {"wait", "select", "_worker", "_wait", "poll", "acquire", "get"}

SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
PROJECT = re.compile(r"/(reasonmed|flows|tasks|bench)/")

# Coarse layers: first match wins, checked from the leaf's owner.
LAYERS = [
    ("prefect.server (API, services)", lambda o, f: o == "prefect" and "/prefect/server/" in f),
    ("prefect client (task engine, API client, events, logs)", lambda o, f: o == "prefect"),
    (
        "database driver + SQLAlchemy",
        lambda o, f: o in {"sqlalchemy", "asyncpg", "psycopg", "psycopg_binary", "psycopg_pool", "alembic"},
    ),
    (
        "HTTP (httpx, httpcore, h11, h2, anyio, aiohttp, uvicorn, starlette, fastapi)",
        lambda o, f: (
            o
            in {
                "httpx",
                "httpcore",
                "h11",
                "h2",
                "anyio",
                "aiohttp",
                "uvicorn",
                "starlette",
                "fastapi",
                "websockets",
                "yarl",
                "multidict",
            }
        ),
    ),
    ("pydantic (validation, serialisation)", lambda o, f: o in {"pydantic", "pydantic_core"}),
    ("project code (reasonmed, flows, tasks)", lambda o, f: o == "project"),
]


def owner(file: str) -> str:
    m = SITE.search(file)
    if m:
        return m.group(1)
    if PROJECT.search(file):
        return "project"
    return ""


def summarise(path: Path, cpu_ms_per_call: float | None, rate: float, top: int) -> None:
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    owners = [owner(f.get("file", "")) for f in frames]
    waiting = 0.0
    by_owner: Counter[str] = Counter()
    by_layer: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0.0
    for prof in data["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            if not stack:
                continue
            leaf = frames[stack[-1]]
            if leaf["name"].split(".")[-1] in WAITS:
                waiting += weight
                continue
            total += weight
            self_time[f"{leaf['name']} ({Path(leaf.get('file', '?')).name}:{leaf.get('line', '?')})"] += (
                weight
            )
            o, f = "stdlib/other", leaf.get("file", "")
            for idx in reversed(stack):
                if owners[idx]:
                    o, f = owners[idx], frames[idx].get("file", "")
                    break
            by_owner[o] += weight
            by_layer[
                next((name for name, test in LAYERS if test(o, f)), "other (stdlib, event loop, GC)")
            ] += weight

    def fmt(w: float) -> str:
        per = f"  {cpu_ms_per_call * w / total:6.2f} ms/call" if cpu_ms_per_call else ""
        return f"{w / rate:8.1f} s  {100 * w / total:5.1f}%{per}"

    print(
        f"{path.name}: {(total + waiting) / rate:.1f} s sampled, {100 * waiting / (total + waiting):.0f}% of it in "
        f"blocking calls (runnable, waiting for a core; left out below)"
        + (
            f"; shares applied to {cpu_ms_per_call:.2f} CPU ms per LLM call (process accounting)"
            if cpu_ms_per_call
            else ""
        )
    )
    print("  by layer:")
    for name, w in by_layer.most_common():
        print(f"    {fmt(w)}  {name}")
    print("  by owner package:")
    for name, w in by_owner.most_common(12):
        print(f"    {fmt(w)}  {name}")
    print(f"  top {top} functions by self time:")
    for name, w in self_time.most_common(top):
        print(f"    {fmt(w)}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profiles", nargs="+", type=Path)
    ap.add_argument(
        "--cpu-ms-per-call", type=float, help="the process's CPU ms per LLM call: print each share in ms"
    )
    ap.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for p in args.profiles:
        summarise(p, args.cpu_ms_per_call, args.rate, args.top)


if __name__ == "__main__":
    main()
