"""Benchmark of the LLM client (OpenAICompatibleBackend) against the simulator in its own process.

(a) many requests at a fixed simulated latency: achieved requests/s against the ideal cap / latency,
    the server's time-averaged in-flight count, and the client's CPU per request;
(b) the same at zero latency: the client's own ceiling (req/s and CPU ms per request).
Targets: (a) >= 0.95 of ideal; (b) <= 2 ms of client CPU per request.

    python bench/llm_client.py                      # 10,000 requests, cap 256, 1 s latency, then latency 0
    python bench/llm_client.py --requests 2000 --compare-httpx   # also measure a bare httpx client

Not a test: it prints figures (and --json writes them) for the record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonmed.config import EndpointConfig  # noqa: E402
from reasonmed.llm.openai_backend import OpenAICompatibleBackend  # noqa: E402
from reasonmed.prompts import context_block, format_options, get_template  # noqa: E402
from reasonmed.sim.launcher import SimServer  # noqa: E402

OPTIONS = {
    "A": "Acute inferior myocardial infarction",
    "B": "Aortic dissection",
    "C": "Pulmonary embolism",
    "D": "Acute pericarditis",
    "E": "Gastro-oesophageal reflux disease",
}
QUESTION = (
    "A 62-year-old man with hypertension and type 2 diabetes presents with 90 minutes of crushing retrosternal "
    "chest pain radiating to the jaw, diaphoresis and nausea. Blood pressure is 100/60 mm Hg in both arms. ECG "
    "shows ST elevation in leads II, III and aVF with reciprocal depression in I and aVL. What is the most likely "
    "diagnosis?"
)
MESSAGES = get_template("generate").render(
    question=QUESTION, context_block=context_block(None), options=format_options(OPTIONS)
)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def run_backend(base_url: str, cap: int, n_requests: int, after_warm_up: Any) -> dict[str, float]:
    cfg = EndpointConfig(
        base_url=base_url, model="sim/bench", max_in_flight=cap, timeout_s=120, max_retries=0
    )
    backend = OpenAICompatibleBackend("bench", cfg)

    async def one(i: int) -> None:
        await backend.complete(MESSAGES, temperature=0.7, max_tokens=8192, seed=i)

    try:
        await asyncio.gather(*(one(i) for i in range(cap)))  # warm the pool: every connection opened
        after_warm_up()
        return await _measure(one, n_requests)
    finally:
        await backend.aclose()


async def run_httpx(base_url: str, cap: int, n_requests: int, after_warm_up: Any) -> dict[str, float]:
    """The same traffic from one bare httpx.AsyncClient (pool = cap) behind the same kind of semaphore."""
    import httpx

    slots = asyncio.Semaphore(cap)
    url = base_url + "/chat/completions"
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            body = {
                "model": "sim/bench",
                "messages": MESSAGES,
                "temperature": 0.7,
                "max_tokens": 8192,
                "seed": i,
            }
            async with slots:
                response = await client.post(url, content=json.dumps(body).encode())
                json.loads(response.content)

        await asyncio.gather(*(one(i) for i in range(min(cap, n_requests))))
        after_warm_up()
        return await _measure(one, n_requests)


async def _measure(one: Any, n_requests: int) -> dict[str, float]:
    done: list[float] = []

    async def timed(i: int) -> None:
        await one(i)
        done.append(time.perf_counter())

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(timed(i) for i in range(n_requests)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # Steady state: the middle 80% of completions, leaving out the start-up and the last partial wave.
    lo, hi = int(n_requests * 0.1), int(n_requests * 0.9)
    steady = (
        (hi - lo) / (done[hi] - done[lo]) if n_requests >= 20 and done[hi] > done[lo] else n_requests / wall
    )
    return {
        "requests": n_requests,
        "wall_s": wall,
        "req_per_s": n_requests / wall,
        "steady_req_per_s": steady,
        "client_cpu_ms_per_req": cpu * 1000 / n_requests,
    }


def scenario(latency_ms: float, cap: int, n_requests: int, client: str) -> dict[str, float]:
    with SimServer(base_latency_ms=latency_ms, per_token_ms=0.0, max_num_seqs=max(cap * 2, 256)) as sim:
        server = psutil.Process(sim.pid)
        runner = run_backend if client == "backend" else run_httpx
        start: dict[str, float] = {}

        def after_warm_up() -> None:  # measure the steady state only
            sim.reset_metrics()
            start["server_cpu"] = _cpu(server)

        result = asyncio.run(runner(sim.base_url, cap, n_requests, after_warm_up))
        server_cpu = _cpu(server) - start["server_cpu"]
        metrics = sim.metrics()
    result.update(
        latency_ms=latency_ms,
        cap=cap,
        server_in_flight_time_avg=metrics["in_flight_time_avg"],
        server_in_flight_peak=metrics["in_flight_peak"],
        server_cpu_ms_per_req=server_cpu * 1000 / n_requests,
        ok=metrics['requests_total{outcome="ok"}'],
    )
    if latency_ms > 0:
        ideal = result["ideal_req_per_s"] = cap / (latency_ms / 1000.0)
        result["ratio_to_ideal"] = result["req_per_s"] / ideal
        result["steady_ratio_to_ideal"] = result["steady_req_per_s"] / ideal
        # Even a perfect client needs ceil(N / cap) full latencies: the last wave is partial.
        result["ceiling_ratio"] = n_requests / (math.ceil(n_requests / cap) * latency_ms / 1000.0) / ideal
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--cap", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument(
        "--compare-httpx", action="store_true", help="also run a bare httpx client (slow at cap 256)"
    )
    parser.add_argument("--httpx-requests", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    figures: dict[str, Any] = {}
    print(
        f"(a) {args.requests} requests, cap {args.cap}, simulated latency {args.latency_ms:g} ms, no faults"
    )
    a = figures["a"] = scenario(args.latency_ms, args.cap, args.requests, "backend")
    print(
        f"    {a['req_per_s']:.1f} req/s vs ideal {a['ideal_req_per_s']:.1f} -> ratio {a['ratio_to_ideal']:.3f} "
        f"(target >= 0.95: {'met' if a['ratio_to_ideal'] >= 0.95 else 'MISSED'})"
    )
    print(
        f"    steady state (middle 80% of completions) {a['steady_req_per_s']:.1f} req/s -> ratio "
        f"{a['steady_ratio_to_ideal']:.3f}; a perfect client's ceiling for this run: {a['ceiling_ratio']:.3f}"
    )
    print(
        f"    server time-averaged in-flight {a['server_in_flight_time_avg']:.1f} of {args.cap} "
        f"(peak {a['server_in_flight_peak']:.0f}), client CPU {a['client_cpu_ms_per_req']:.3f} ms/req, "
        f"server CPU {a['server_cpu_ms_per_req']:.3f} ms/req"
    )
    print(f"    machine load average now: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"(b) {args.requests} requests, cap {args.cap}, latency 0")
    b = figures["b"] = scenario(0.0, args.cap, args.requests, "backend")
    print(
        f"    {b['req_per_s']:.0f} req/s, client CPU {b['client_cpu_ms_per_req']:.3f} ms/req "
        f"(target <= 2 ms: {'met' if b['client_cpu_ms_per_req'] <= 2.0 else 'MISSED'}), "
        f"server CPU {b['server_cpu_ms_per_req']:.3f} ms/req"
    )
    print(
        f"    the client alone would sustain about {1000 / b['client_cpu_ms_per_req']:.0f} req/s on one core; "
        f"the simulator, at {b['server_cpu_ms_per_req']:.3f} ms/req, is the limit here"
        if b["server_cpu_ms_per_req"] > b["client_cpu_ms_per_req"]
        else "    the client is the limit here"
    )
    if args.compare_httpx:
        for latency in (args.latency_ms, 0.0):
            n = args.httpx_requests
            print(f"(httpx) {n} requests, cap {args.cap}, latency {latency:g} ms, bare httpx.AsyncClient")
            h = figures[f"httpx_latency_{latency:g}"] = scenario(latency, args.cap, n, "httpx")
            ratio = f", ratio {h['ratio_to_ideal']:.3f}" if latency else ""
            print(
                f"    {h['req_per_s']:.1f} req/s{ratio}, client CPU {h['client_cpu_ms_per_req']:.3f} ms/req"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
