"""Start the simulator as a separate process and stop it again: for ``reasonmed run``, tests and benches.

A separate process keeps the simulator off the caller's event loop and CPU accounting, and makes the
traffic real HTTP over loopback. Port 0 lets the server bind a free port and report it, so parallel
test runs never race for one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from reasonmed.sim.metrics import fetch_metrics
from reasonmed.sim.server import READY_PREFIX
from reasonmed.sim.settings import SimSettings


class SimServerError(RuntimeError):
    """The simulator did not start (its stderr tail is in the message)."""


class SimServer:
    """``with SimServer(base_latency_ms=0) as sim: ... sim.base_url`` (also ``async with``).

    Keyword arguments are :class:`SimSettings` fields; ``port`` defaults to 0 (a free port).
    """

    def __init__(
        self, settings: SimSettings | None = None, *, startup_timeout_s: float = 30.0, **options: Any
    ) -> None:
        base = settings or SimSettings(port=0)
        if "port" not in options and settings is None:
            options["port"] = 0
        self.settings = replace(base, **options)
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: Any = None
        self.root_url: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what an endpoint's ``base_url`` should be."""
        if self.root_url is None:
            raise RuntimeError("the simulator is not running")
        return self.root_url + "/v1"

    def start(self) -> SimServer:
        if self._proc is not None:
            return self
        self._stderr = tempfile.NamedTemporaryFile(prefix="reasonmed-sim-", suffix=".log", delete=False)  # noqa: SIM115
        cmd = [sys.executable, "-m", "reasonmed.sim", *self.settings.to_argv()]
        # The database URL travels in the child's environment, never on its (world-readable) command line.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.settings.to_env()}
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True, env=env
        )
        try:
            self.root_url = self._read_ready_line()
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_ready_line(self) -> str:
        """The server prints one ``REASONMED_SIM_READY url`` line once it is bound."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.startup_timeout_s)
        line = result[0].strip() if result else ""
        if not line.startswith(READY_PREFIX):
            self._die(
                f"did not report its address within {self.startup_timeout_s:g}s"
                if not result
                else "exited during start-up"
            )
        return line.removeprefix(READY_PREFIX).strip()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self._die("exited during start-up")
            try:
                if httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self._die(f"did not answer /health within {self.startup_timeout_s:g}s")

    def _die(self, what: str) -> None:
        code = self._proc.poll() if self._proc else None
        raise SimServerError(
            f"simulator {what} (exit code {code}); command: python -m reasonmed.sim {' '.join(self.settings.to_argv())}\n"
            f"--- stderr (last lines) ---\n{self.stderr_tail()}"
        )

    def stderr_tail(self, lines: int = 30) -> str:
        if self._stderr is None:
            return ""
        try:
            text = Path(self._stderr.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            Path(self._stderr.name).unlink(missing_ok=True)
            self._stderr = None
        self.root_url = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------------ observations

    def metrics(self) -> dict[str, float]:
        return fetch_metrics(self.base_url)

    def questions(self) -> dict[str, int]:
        """The questions this server answered (``prefix_cache.question_key`` -> requests)."""
        response = httpx.get(f"{self.root_url}/admin/questions", timeout=10.0)
        response.raise_for_status()
        seen: dict[str, int] = response.json()["questions"]
        return seen

    def reset_metrics(self) -> None:
        httpx.post(f"{self.root_url}/admin/reset", timeout=10.0).raise_for_status()

    def set_faults(self, *rules: str) -> None:
        """Replace the targeted fault rules (``ROLE:MARKER=KIND``) of the running server."""
        httpx.post(
            f"{self.root_url}/admin/faults", json={"rules": list(rules)}, timeout=10.0
        ).raise_for_status()

    def pause(self, paused: bool = True) -> None:
        """Hold every chat request (``False`` releases them): the engine stalls, the client waits."""
        httpx.post(f"{self.root_url}/admin/pause", json={"paused": paused}, timeout=10.0).raise_for_status()

    def expire_batches(self, which: str = "all") -> list[str]:
        """End the completion window of one open batch (its id) or of all of them now; their ids."""
        response = httpx.post(f"{self.root_url}/admin/batches", json={"expire": which}, timeout=30.0)
        response.raise_for_status()
        expired: list[str] = response.json()["expired"]
        return expired

    def set_batch_delay(self, seconds: float) -> None:
        """Batches created from now on wait ``seconds`` in_progress before their first line runs."""
        httpx.post(
            f"{self.root_url}/admin/batches", json={"delay_s": seconds}, timeout=10.0
        ).raise_for_status()

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
