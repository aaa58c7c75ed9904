"""The simulator's counters in Prometheus text format (like vLLM's /metrics), and a reader for them.

Tests and benchmarks read what the server saw (peak in-flight, outcomes per fault) instead of
trusting the client's own account.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable

PREFIX = "reasonmed_sim_"
OUTCOMES = (
    "ok",
    "429",
    "500",
    "hang",
    "drop",
    "malformed",
    "truncate",
    "noanswer",
    "400",
    "invalid",
    "context",  # refused as vLLM refuses it: prompt + max_tokens over --max-model-len
    "limited",  # refused with 429 over --rate-limit-rpm/--rate-limit-tpm (not an injected fault)
)
# A batch line goes through the chat path (never rate-limited), or fails by --batch-line-failure-rate.
BATCH_OUTCOMES = (*(o for o in OUTCOMES if o != "limited"), "line_failure")
BATCH_STATUSES = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)


class SimMetrics:
    """Counters plus the time-averaged number of requests in flight since start (or the last reset).

    Interactive chat requests and Batch API lines are counted apart: ``requests_*``, ``in_flight*``,
    ``prompt_tokens_total`` and ``completion_tokens_total`` are interactive requests only, ``batch_*`` the
    lines of batches. ``running`` (engine slots) holds both: they share the emulated engine.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.in_flight = 0
        self.running = 0
        self.batch_lines_in_flight = 0
        # per requested model: one endpoint's share of the server
        self.model_in_flight: Counter[str] = Counter()
        self._bodies: set[bytes] = set()  # fingerprints of the chat bodies received (kept across resets)
        self.reset()

    def reset(self) -> None:
        """Zero the counters; gauges (in flight, running) keep their current values."""
        now = time.monotonic()
        self.outcomes: Counter[str] = Counter()
        self.roles: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.with_authorization = 0
        self.duplicate_requests = 0  # chat bodies received before, byte for byte
        self.prefix_cache_queries = 0  # prompt tokens asked (reasonmed/sim/prefix_cache.py)
        self.prefix_cache_hits = 0  # of those, tokens the emulated prefix cache held
        self.client_disconnects = 0
        self.peak = self.in_flight
        self.model_peak: Counter[str] = Counter(self.model_in_flight)
        # the Batch API
        self.files_uploaded = 0
        self.file_bytes_uploaded = 0
        self.batches_created = 0
        self.batch_statuses: Counter[str] = Counter()  # batches that reached each status
        self.batch_outcomes: Counter[str] = Counter()  # lines run, by outcome
        self.batch_roles: Counter[str] = Counter()
        self.batch_models: Counter[str] = Counter()
        self.batch_lines_expired = 0  # lines written to an error file as batch_expired (never run)
        self.batch_prompt_tokens = 0
        self.batch_completion_tokens = 0
        self._area = 0.0
        self._running_area = 0.0
        self._since = now
        self._last = now
        self.engine_queued = 0  # requests that waited for an engine slot (vLLM's "waiting")
        self.engine_queue_s = 0.0  # and how long, in total

    def _advance(self) -> None:
        now = time.monotonic()
        self._area += self.in_flight * (now - self._last)
        self._running_area += self.running * (now - self._last)
        self._last = now

    def received(self, body: bytes) -> None:
        """A chat body arrived: a body seen before (same prompt, seed and sampling) is a duplicate call, which
        the pipeline never sends unless a transport failure made it retry. Up to 2 million are remembered."""
        key = hashlib.blake2b(body, digest_size=16).digest()
        if key in self._bodies:
            self.duplicate_requests += 1
        elif len(self._bodies) < 2_000_000:
            self._bodies.add(key)

    def engine_slot(self, taken: bool, waited_s: float = 0.0) -> None:
        """A request took (``taken``) or gave back an emulated engine slot; ``waited_s`` in the queue."""
        self._advance()
        self.running += 1 if taken else -1
        if taken and waited_s > 0.001:  # past the event loop's own scheduling delay: a real queue
            self.engine_queued += 1
            self.engine_queue_s += waited_s

    def time_avg_running(self) -> float:
        """Engine slots in use on average since start or reset: over ``max_num_seqs``, the utilisation."""
        self._advance()
        elapsed = self._last - self._since
        return self._running_area / elapsed if elapsed > 0 else float(self.running)

    def enter(self, *, role: str, model: str, authorized: bool, batch: bool = False) -> None:
        if batch:
            self.batch_lines_in_flight += 1
            self.batch_roles[role] += 1
            self.batch_models[model] += 1
            return
        self._advance()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.model_in_flight[model] += 1
        self.model_peak[model] = max(self.model_peak[model], self.model_in_flight[model])
        self.roles[role] += 1
        self.models[model] += 1
        if authorized:
            self.with_authorization += 1

    def leave(self, *, model: str, batch: bool = False) -> None:
        if batch:
            self.batch_lines_in_flight -= 1
            return
        self._advance()
        self.in_flight -= 1
        self.model_in_flight[model] -= 1

    def count(self, outcome: str, *, batch: bool = False) -> None:
        """One request (or batch line) ended as ``outcome`` (an OUTCOMES or BATCH_OUTCOMES label)."""
        (self.batch_outcomes if batch else self.outcomes)[outcome] += 1

    def tokens(self, prompt: int, completion: int, *, batch: bool = False) -> None:
        if batch:
            self.batch_prompt_tokens += prompt
            self.batch_completion_tokens += completion
        else:
            self.prompt_tokens += prompt
            self.completion_tokens += completion

    def time_avg_in_flight(self) -> float:
        self._advance()
        elapsed = self._last - self._since
        return self._area / elapsed if elapsed > 0 else float(self.in_flight)

    def render(self) -> str:
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {PREFIX}{name} {help_text}")
            out.append(f"# TYPE {PREFIX}{name} {kind}")
            out.extend(f"{PREFIX}{name}{labels} {_fmt(value)}" for labels, value in samples)

        metric(
            "requests_total",
            "counter",
            "Chat requests by outcome (simulated faults included).",
            [(f'{{outcome="{o}"}}', self.outcomes.get(o, 0)) for o in OUTCOMES],
        )
        metric(
            "requests_by_role_total",
            "counter",
            "Chat requests by detected prompt role.",
            [(f'{{role="{_esc(r)}"}}', v) for r, v in sorted(self.roles.items())],
        )
        metric(
            "requests_by_model_total",
            "counter",
            "Chat requests by requested model.",
            [(f'{{model="{_esc(m)}"}}', v) for m, v in sorted(self.models.items())],
        )
        metric(
            "requests_with_authorization_total",
            "counter",
            "Chat requests that carried an Authorization header (the value is never recorded).",
            [("", self.with_authorization)],
        )
        metric(
            "client_disconnects_total",
            "counter",
            "Requests whose client went away before the reply.",
            [("", self.client_disconnects)],
        )
        metric(
            "in_flight",
            "gauge",
            "Requests received and not yet answered (queued included).",
            [("", self.in_flight)],
        )
        metric("running", "gauge", "Requests holding an emulated engine slot.", [("", self.running)])
        metric(
            "running_time_avg",
            "gauge",
            "Time-averaged engine slots in use since start or reset (over max_num_seqs: utilisation).",
            [("", self.time_avg_running())],
        )
        metric(
            "engine_queued_total",
            "counter",
            "Requests that waited for an engine slot, as vLLM's waiting queue holds them.",
            [("", self.engine_queued)],
        )
        metric(
            "engine_queue_seconds_total",
            "counter",
            "Seconds requests spent waiting for an engine slot.",
            [("", self.engine_queue_s)],
        )
        metric("in_flight_peak", "gauge", "Highest in-flight count since start or reset.", [("", self.peak)])
        metric(
            "in_flight_peak_by_model",
            "gauge",
            "Highest in-flight count of one requested model (one endpoint's) since start or reset.",
            [(f'{{model="{_esc(m)}"}}', v) for m, v in sorted(self.model_peak.items())],
        )
        metric(
            "in_flight_time_avg",
            "gauge",
            "Time-averaged in-flight count since start or reset.",
            [("", self.time_avg_in_flight())],
        )
        metric(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens of answered requests (words x 1.3).",
            [("", self.prompt_tokens)],
        )
        metric(
            "completion_tokens_total",
            "counter",
            "Completion tokens of answered requests (words x 1.3).",
            [("", self.completion_tokens)],
        )
        metric(
            "duplicate_requests_total",
            "counter",
            "Chat bodies received before, byte for byte (retries after a fault included).",
            [("", self.duplicate_requests)],
        )
        metric(
            "prefix_cache_queries_total",
            "counter",
            "Prompt tokens asked, as vLLM's vllm:prefix_cache_queries counts them (batch lines included).",
            [("", self.prefix_cache_queries)],
        )
        metric(
            "prefix_cache_hits_total",
            "counter",
            "Prompt tokens the emulated prefix cache held (a question seen before), as vllm:prefix_cache_hits.",
            [("", self.prefix_cache_hits)],
        )
        self._render_batches(metric)
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the simulator started.",
            [("", time.monotonic() - self.started)],
        )
        return "\n".join(out) + "\n"

    def _render_batches(self, metric: Callable[[str, str, str, list[tuple[str, float]]], None]) -> None:
        metric("files_uploaded_total", "counter", "Files uploaded to /v1/files.", [("", self.files_uploaded)])
        metric(
            "file_bytes_uploaded_total",
            "counter",
            "Bytes of the files uploaded to /v1/files.",
            [("", self.file_bytes_uploaded)],
        )
        metric("batches_created_total", "counter", "Batches created.", [("", self.batches_created)])
        metric(
            "batches_total",
            "counter",
            "Batches that reached each status (a completed batch counts in validating, in_progress, "
            "finalizing and completed).",
            [(f'{{status="{s}"}}', self.batch_statuses.get(s, 0)) for s in BATCH_STATUSES],
        )
        metric(
            "batch_lines_total",
            "counter",
            "Batch lines run through the chat path, by outcome (not counted in requests_total).",
            [(f'{{outcome="{o}"}}', self.batch_outcomes.get(o, 0)) for o in BATCH_OUTCOMES],
        )
        metric(
            "batch_lines_by_role_total",
            "counter",
            "Batch lines by detected prompt role.",
            [(f'{{role="{_esc(r)}"}}', v) for r, v in sorted(self.batch_roles.items())],
        )
        metric(
            "batch_lines_by_model_total",
            "counter",
            "Batch lines by requested model.",
            [(f'{{model="{_esc(m)}"}}', v) for m, v in sorted(self.batch_models.items())],
        )
        metric(
            "batch_lines_expired_total",
            "counter",
            "Batch lines never run, written to an error file as batch_expired.",
            [("", self.batch_lines_expired)],
        )
        metric(
            "batch_lines_in_flight",
            "gauge",
            "Batch lines started and not yet answered.",
            [("", self.batch_lines_in_flight)],
        )
        metric(
            "batch_prompt_tokens_total",
            "counter",
            "Prompt tokens of answered batch lines.",
            [("", self.batch_prompt_tokens)],
        )
        metric(
            "batch_completion_tokens_total",
            "counter",
            "Completion tokens of answered batch lines.",
            [("", self.batch_completion_tokens)],
        )


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """``{'requests_total{outcome="ok"}': 12.0, 'in_flight_peak': 16.0, ...}`` (prefix dropped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1).removeprefix(PREFIX)] = float(m.group(2))
    return out


def server_root(base_url: str) -> str:
    """``http://host:port`` from a base URL that may end in ``/v1``."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def fetch_metrics(base_url: str, timeout: float = 10.0) -> dict[str, float]:
    import httpx  # not at module level: the server process never needs a client

    response = httpx.get(server_root(base_url) + "/metrics", timeout=timeout)
    response.raise_for_status()
    return parse_metrics(response.text)
