"""The simulator's settings: one object that the CLI fills and the launcher turns back into flags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reasonmed.sim.faults import FAULT_KINDS, TargetedFault
from reasonmed.sim.lengths import profile_named
from reasonmed.sim.styles import Style, style_named
from reasonmed.simulated import SIM_MODEL_PREFIX, is_simulated_model


@dataclass(frozen=True)
class SimSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    # answers
    accuracy: Mapping[str, float] = field(default_factory=dict)
    default_accuracy: float = 0.6
    refine_accuracy: float = 0.9
    verifier_error_rate: float = 0.0
    questions_db: str | None = None
    # how each model's paths state their answer (reasonmed/sim/styles.py)
    styles: Mapping[str, Style] = field(default_factory=dict)
    default_style: Style = "plain"
    # engine emulation
    base_latency_ms: float = 50.0
    per_token_ms: float = 0.05
    max_num_seqs: int = 256
    max_model_len: int | None = None  # like vLLM's --max-model-len: reported on /v1/models, enforced (400)
    length_profile: str | None = None  # completion tokens drawn per role (reasonmed/sim/lengths.py)
    # faults
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    faults: Mapping[str, float] = field(default_factory=dict)
    fault_seed: int = 0
    fault_script: tuple[str, ...] = ()
    targeted_faults: tuple[str, ...] = ()  # ROLE:MARKER=KIND rules (faults.TargetedFault), checked first
    retry_after: float = 1.0
    # a hosted API's rate limits (reasonmed/sim/rate_limit.py): 429 beyond them, x-ratelimit-* headers
    rate_limit_rpm: float | None = None
    rate_limit_tpm: float | None = None
    rate_limit_window_s: float = 60.0  # the bucket holds this many seconds of the limit: short for tests
    rate_limit_headers: bool = True
    hang_seconds: float = 3600.0
    log_level: str = "WARNING"
    # scripted outcomes for chosen questions (reasonmed/sim/script.py): a JSON file's path
    script: str | None = None
    # the OpenAI Batch API (reasonmed/sim/batches.py): /v1/files and /v1/batches, held in memory
    batch_max_bytes: int = 200 * 1024 * 1024  # largest input file accepted (400 beyond it)
    batch_max_requests: int = 50_000  # lines per input file; more fails the batch (too_many_tasks)
    batch_delay_s: float = 0.0  # a batch waits this long in_progress before its first line runs
    batch_window_s: float = 86_400.0  # the "24h" completion window, in seconds: still open then -> expired
    batch_concurrency: int = 64  # lines of one batch run at once
    # fraction of lines answered 500 whatever they ask; which ones is fixed by fault_seed and custom_id
    batch_line_failure_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("default_accuracy", "refine_accuracy", "verifier_error_rate", "fault_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1 (got {value})")
        for model, value in self.accuracy.items():
            if not is_simulated_model(model):  # /v1/models lists it, so the chat route must serve it
                raise ValueError(
                    f"accuracy for {model}: the simulator serves only models named {SIM_MODEL_PREFIX}..."
                )
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"accuracy for {model} must be between 0 and 1 (got {value})")
        for style in (self.default_style, *self.styles.values()):
            style_named(style)
        for rule in self.targeted_faults:
            TargetedFault.parse(rule)
        if self.max_num_seqs < 1:
            raise ValueError("max-num-seqs must be >= 1")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max-model-len must be >= 1")
        if self.length_profile is not None:
            profile_named(self.length_profile)
        for name in ("rate_limit_rpm", "rate_limit_tpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive (got {value})")
        if not self.rate_limit_window_s > 0:
            raise ValueError(f"rate-limit-window-s must be positive (got {self.rate_limit_window_s})")
        if min(self.base_latency_ms, self.per_token_ms, self.retry_after, self.hang_seconds) < 0:
            raise ValueError("latencies, retry-after and hang-seconds must not be negative")
        self._check_batch_settings()

    def _check_batch_settings(self) -> None:
        for name in ("batch_max_bytes", "batch_max_requests", "batch_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.batch_delay_s < 0 or not self.batch_window_s > 0:
            raise ValueError("batch-delay-s must not be negative and batch-window-s must be positive")
        if not 0.0 <= self.batch_line_failure_rate <= 1.0:
            raise ValueError(
                f"batch-line-failure-rate must be between 0 and 1 (got {self.batch_line_failure_rate})"
            )

    def to_argv(self) -> list[str]:
        """Flags for ``python -m reasonmed.sim`` that reproduce these settings."""
        argv = [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--default-accuracy",
            repr(self.default_accuracy),
            "--refine-accuracy",
            repr(self.refine_accuracy),
            "--verifier-error-rate",
            repr(self.verifier_error_rate),
            "--default-style",
            self.default_style,
            "--base-latency-ms",
            repr(self.base_latency_ms),
            "--per-token-ms",
            repr(self.per_token_ms),
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--fault-rate",
            repr(self.fault_rate),
            "--fault-kinds",
            ",".join(self.fault_kinds),
            "--fault-seed",
            str(self.fault_seed),
            "--retry-after",
            repr(self.retry_after),
            "--hang-seconds",
            repr(self.hang_seconds),
            "--log-level",
            self.log_level,
        ]
        if self.max_model_len is not None:
            argv += ["--max-model-len", str(self.max_model_len)]
        if self.length_profile is not None:
            argv += ["--length-profile", self.length_profile]
        if self.rate_limit_rpm is not None:
            argv += ["--rate-limit-rpm", repr(self.rate_limit_rpm)]
        if self.rate_limit_tpm is not None:
            argv += ["--rate-limit-tpm", repr(self.rate_limit_tpm)]
        argv += ["--rate-limit-window-s", repr(self.rate_limit_window_s)]
        if not self.rate_limit_headers:
            argv.append("--no-rate-limit-headers")
        for model, value in self.accuracy.items():
            argv += ["--accuracy", f"{model}={value!r}"]
        for model, style in self.styles.items():
            argv += ["--style", f"{model}={style}"]
        for kind, value in self.faults.items():
            argv += ["--fault", f"{kind}={value!r}"]
        if self.fault_script:
            argv += ["--fault-script", ",".join(self.fault_script)]
        for rule in self.targeted_faults:
            argv += ["--fault-when", rule]
        if self.script:
            argv += ["--script", self.script]
        argv += [
            "--batch-max-bytes",
            str(self.batch_max_bytes),
            "--batch-max-requests",
            str(self.batch_max_requests),
            "--batch-delay-s",
            repr(self.batch_delay_s),
            "--batch-window-s",
            repr(self.batch_window_s),
            "--batch-concurrency",
            str(self.batch_concurrency),
            "--batch-line-failure-rate",
            repr(self.batch_line_failure_rate),
        ]
        return argv  # questions_db is not here: a URL may hold a password, and argv is public (ps, /proc)

    def to_env(self) -> dict[str, str]:
        """What the child process gets through its environment rather than its command line."""
        return {QUESTIONS_DB_ENV: self.questions_db} if self.questions_db else {}


QUESTIONS_DB_ENV = "REASONMED_SIM_QUESTIONS_DB"


def _pairs(items: Iterable[str], what: str) -> list[tuple[str, str, str]]:
    """``"a=0.7"`` -> ``("a", "0.7", "a=0.7")``; the last '=' splits (model names may contain '=')."""
    out = []
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise ValueError(f"{what}: expected NAME=VALUE, got {item!r}")
        out.append((name, value, item))
    return out


def parse_assignments(items: Iterable[str], what: str) -> dict[str, float]:
    """``["a=0.7", "b=0.5"]`` -> ``{"a": 0.7, "b": 0.5}``."""
    out: dict[str, float] = {}
    for name, value, item in _pairs(items, what):
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"{what}: {value!r} in {item!r} is not a number") from None
    return out


def parse_styles(items: Iterable[str], what: str) -> dict[str, Style]:
    """``["sim/a=think"]`` -> ``{"sim/a": "think"}``, each style checked."""
    try:
        return {name: style_named(value) for name, value, _ in _pairs(items, what)}
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
