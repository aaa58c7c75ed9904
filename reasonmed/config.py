"""Configuration: one settings object from the environment, one pipeline file for endpoints and agents.

Everything is validated up front so a typo fails at start-up with one line that names the key,
not half-way through a night of generation.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from reasonmed import env_refs, safe_yaml
from reasonmed.bounded_file import FileRefused, read_small_text
from reasonmed.ingest.readers import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    Limits,
)
from reasonmed.prompts import PromptError, PromptTemplate, check_template, get_template
from reasonmed.prompts.files import read_prompt_text
from reasonmed.redact import redact, redact_data, redact_url
from reasonmed.simulated import SIM_MODEL_PREFIX, is_simulated_model
from reasonmed.structured_output import StructuredDialect
from reasonmed.tiers import GuardMode


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who has to fix it; it quotes what the user wrote,
    so any credential in that is masked here, before the message is printed, logged or stored."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- endpoints


def _replica_entry(value: Any) -> Any:
    """A replica written as its URL alone (``- http://gpu-3:8000/v1``) takes the endpoint's cap."""
    return {"base_url": value} if isinstance(value, str) else value


class ReplicaConfig(_Strict):
    """One server of a replicated endpoint: the same model served again, with its own cap."""

    base_url: str = Field(min_length=1, description="e.g. http://gpu-3:8000/v1")
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="this replica's cap; default: the endpoint's max_in_flight",
    )


ReplicaEntry = Annotated[ReplicaConfig, BeforeValidator(_replica_entry)]


class EndpointConfig(_Strict):
    """One served model: an OpenAI-compatible server (vLLM first), several replicas of one, or an
    in-process vLLM engine."""

    kind: Literal["openai", "vllm"] = "openai"
    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1 (kind=openai)")
    replicas: list[ReplicaEntry] = Field(
        default_factory=list,
        description="several servers of the same model instead of one base_url: each question's requests go "
        "to one replica (its prefix cache is hit), moving only while that replica is down (llm/replicas.py)",
    )
    model: str = Field(min_length=1, description="model name the server expects")
    api_key_env: str | None = Field(default=None, description="name of the env var that holds the API key")
    api_key_secret: str | None = Field(
        default=None, description="name of a Prefect Secret block with the key"
    )
    max_in_flight: int = Field(default=64, ge=1, le=100_000)
    context_tokens: int | None = Field(
        default=None,
        ge=256,
        le=10_000_000,
        description="the server's context length in tokens (prompt + completion), for servers that do not report "
        "it (llama-cpp-python's --n_ctx, a hosted API's documented context); where the server reports one "
        "too, the smaller is used. Requests lower max_tokens to fit it (deploy/README.md, context budgets)",
    )
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=50)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    supports_n: bool = Field(
        default=True, description="engine accepts n>1 (vLLM does; llama.cpp's server does not)"
    )
    structured_dialect: StructuredDialect = Field(
        default="json_schema",
        description="how this engine takes a JSON schema for agents with structured_output: "
        "json_schema (OpenAI, vLLM) or llamacpp (llama.cpp's json_object + schema)",
    )
    reasoning_model: bool = Field(
        default=False,
        description="an OpenAI o1/o3-class model: the budget goes as max_completion_tokens and no temperature or "
        "top_p is sent (those models refuse them)",
    )
    max_response_bytes: int = Field(
        default=32 << 20,
        ge=1024,
        description="a response body larger than this is refused unread (bad_response): a hostile or broken "
        "server cannot exhaust memory; 32 MiB holds n=64 answers of 32k tokens",
    )
    breaker_window_s: float = Field(
        default=60.0,
        gt=0,
        description="circuit breaker: once every request has failed for this long, the endpoint counts as down",
    )
    breaker_min_failures: int = Field(
        default=5, ge=1, description="circuit breaker: failed attempts it takes at least"
    )
    requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="the endpoint's request limit (a hosted API's RPM): requests are spaced to stay under it "
        "rather than drawing 429s (llm/rate_limit.py)",
    )
    tokens_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="the endpoint's token limit (TPM), counting each request as its prompt estimate plus its "
        "max_tokens, as OpenAI does",
    )
    price_input_per_mtok: float | None = Field(default=None, ge=0)
    price_output_per_mtok: float | None = Field(default=None, ge=0)
    mode: Literal["interactive", "batch"] = Field(
        default="interactive",
        description="interactive: one request at a time; batch: requests are collected into OpenAI Batch API "
        "files (/v1/files, /v1/batches; `vllm run-batch` reads the same JSONL), their questions wait, and a "
        "later run (or this one, with --batch-wait) collects the results (llm/batch.py)",
    )
    batch_price_factor: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="mode batch: the share of the interactive price a batch request costs (OpenAI: half)",
    )
    batch_max_requests: int = Field(
        default=50_000, ge=1, le=50_000, description="mode batch: requests per batch file (OpenAI: 50,000)"
    )
    batch_max_bytes: int = Field(
        default=190 << 20,
        ge=1024,
        le=200 << 20,
        description="mode batch: bytes per batch file (OpenAI: 200 MB); a larger run is split into several batches",
    )
    engine_args: dict[str, Any] = Field(default_factory=dict, description="AsyncEngineArgs for kind=vllm")

    @property
    def engine_max_model_len(self) -> int | None:
        """An in-process engine's context length, as its ``engine_args`` set it (kind=vllm)."""
        value = self.engine_args.get("max_model_len") if self.kind == "vllm" else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    @property
    def replica_configs(self) -> list[EndpointConfig]:
        """One config per server: each replica's URL and cap in the endpoint's settings (or the endpoint
        itself when it has a single base_url). The one place a replica's effective settings are made."""
        if not self.replicas:
            return [self]
        return [
            self.model_copy(
                update={
                    "base_url": r.base_url,
                    "max_in_flight": r.max_in_flight or self.max_in_flight,
                    "replicas": [],
                }
            )
            for r in self.replicas
        ]

    @property
    def total_in_flight(self) -> int:
        """Requests the endpoint takes at once: its cap, or the sum of its replicas' caps."""
        return sum(c.max_in_flight for c in self.replica_configs)

    @model_validator(mode="after")
    def _url_for_http(self) -> EndpointConfig:
        if self.kind == "openai":
            if self.replicas:
                self._check_replicas()
            elif not self.base_url:
                raise ValueError("base_url (or replicas) is required when kind is 'openai'")
            for url in [self.base_url] if self.base_url else [r.base_url for r in self.replicas]:
                if not re.match(r"^https?://", url):
                    raise ValueError(
                        f"base_url must start with http:// or https:// (got {redact_url(url)!r})"
                    )
        elif self.replicas:
            raise ValueError("replicas apply to HTTP endpoints (kind 'openai')")
        elif self.requests_per_minute is not None or self.tokens_per_minute is not None:
            raise ValueError(
                "requests_per_minute and tokens_per_minute apply to HTTP endpoints (kind 'openai')"
            )
        elif self.mode == "batch":
            raise ValueError("mode batch applies to HTTP endpoints (kind 'openai') that serve the Batch API")
        return self

    def _check_replicas(self) -> None:
        if self.base_url:
            raise ValueError("give either base_url or replicas, not both")
        if self.mode == "batch":
            raise ValueError("mode batch sends to one Batch API: give base_url, not replicas")
        urls = [r.base_url.rstrip("/") for r in self.replicas]
        if len(set(urls)) != len(urls):
            raise ValueError("replicas must not repeat a base_url")


# --------------------------------------------------------------------------- prompts


class PromptFile(_Strict):
    """An agent's own template, read from ``path`` when the pipeline file is loaded (its text is part of
    the config snapshot and hash, so editing the file changes both)."""

    path: str
    text: str


def _read_prompt_file(value: Any, info: ValidationInfo) -> Any:
    """``prompt: path/to/file.txt`` (relative to the pipeline file, and inside its folder) -> its PromptFile."""
    if not isinstance(value, str):
        return value
    base = (info.context or {}).get("base_dir") or Path.cwd()
    return {"path": value, "text": read_prompt_text(value, Path(base))}


AgentPrompt = Annotated[
    PromptFile | None,
    BeforeValidator(_read_prompt_file),
    Field(
        description="file holding this role's own template (system, ---user---, user); default: the profile's"
    ),
]


# --------------------------------------------------------------------------- agents


class _AgentBase(_Strict):
    endpoint: str = Field(min_length=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=262_144)
    prompt: AgentPrompt = None


class GeneratorConfig(_Strict):
    """One generator model; the paper runs three of these at temperatures 0.7, 0.9, 1.0."""

    endpoint: str = Field(min_length=1)
    temperatures: list[float] = Field(default=[0.7, 0.9, 1.0], min_length=1)
    paths_per_temperature: int = Field(default=1, ge=1, le=64)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(default=8192, ge=1, le=262_144)
    prompt: AgentPrompt = None

    @model_validator(mode="after")
    def _temperatures_in_range(self) -> GeneratorConfig:
        for i, t in enumerate(self.temperatures):
            if not 0.0 <= t <= 2.0:
                raise ValueError(f"temperatures[{i}] = {t} is out of range (0.0 to 2.0)")
        if len(set(self.temperatures)) != len(self.temperatures):
            raise ValueError("temperatures must not repeat (use paths_per_temperature for more samples)")
        return self


_STRUCTURED = (
    "ask the engine for schema-constrained JSON (in its endpoint's structured_dialect); off by default"
)


class VerifierConfig(_AgentBase):
    max_tokens: int = Field(default=512, ge=1, le=262_144)
    parse_attempts: int = Field(
        default=3, ge=1, le=10, description="asks again when the verdict does not parse"
    )
    structured_output: bool = Field(default=False, description=_STRUCTURED)


class RankerConfig(_AgentBase):
    max_tokens: int = Field(default=256, ge=1, le=262_144)
    parse_attempts: int = Field(
        default=3, ge=1, le=10, description="asks again when the score does not parse"
    )
    structured_output: bool = Field(default=False, description=_STRUCTURED)


class RefinerConfig(_AgentBase):
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=8192, ge=1, le=262_144)
    max_paths: int = Field(
        default=2, ge=1, le=16, description="best correct paths refined per medium question"
    )


class RegeneratorConfig(_AgentBase):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=8192, ge=1, le=262_144)
    paths: int = Field(default=2, ge=1, le=16, description="new paths written per difficult question")


class SummarizerConfig(_AgentBase):
    temperature: float = Field(default=0.5, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=1, le=262_144)


class AgentsConfig(_Strict):
    generators: list[GeneratorConfig] = Field(min_length=1)
    verifier: VerifierConfig
    ranker: RankerConfig
    refiner: RefinerConfig
    regenerator: RegeneratorConfig
    summarizer: SummarizerConfig


class TierConfig(_Strict):
    """Difficulty tiers by number of generated paths judged Correct (paper: 9 paths, easy >= 5, medium 2-4)."""

    easy_min_correct: int = Field(default=5, ge=1)
    medium_min_correct: int = Field(default=2, ge=1)
    keep_top: int = Field(default=2, ge=1, le=16, description="paths kept per question")

    @model_validator(mode="after")
    def _ordered(self) -> TierConfig:
        if self.medium_min_correct > self.easy_min_correct:
            raise ValueError(
                f"medium_min_correct ({self.medium_min_correct}) must not exceed easy_min_correct ({self.easy_min_correct})"
            )
        return self


class PipelineConfig(_Strict):
    """The pipeline file: which servers exist and which agent uses which."""

    endpoints: dict[str, EndpointConfig] = Field(min_length=1)
    agents: AgentsConfig
    tiers: TierConfig = TierConfig()
    output_retries: int = Field(
        default=2, ge=0, le=10, description="re-asks when a path is truncated or has no parseable answer"
    )
    seed: int = Field(default=0, description="base of every per-request seed, for reproducible runs")
    prompts: Literal["reasonmed", "paper"] = Field(
        default="reasonmed",
        description="prompt profile: the project's own prompts, or the paper's released ones restated",
    )
    answer_guard: GuardMode = Field(
        default="extracted",
        description="whose reading of a path's concluding option must be the key for the path to count as "
        "correct: 'extracted' (the rules), 'verifier' (the verifier's path_answer), 'both' (the rules, the "
        "verifier's reading where they find none), 'off' (the verdict alone, as the paper's released code)",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineConfig:
        known = sorted(self.endpoints)
        refs: list[tuple[str, str]] = [
            (f"agents.generators[{i}].endpoint", g.endpoint) for i, g in enumerate(self.agents.generators)
        ]
        for role in ("verifier", "ranker", "refiner", "regenerator", "summarizer"):
            refs.append((f"agents.{role}.endpoint", getattr(self.agents, role).endpoint))
        for key, name in refs:
            if name not in self.endpoints:
                raise ValueError(f"{key}: unknown endpoint {name!r} (known: {', '.join(known)})")
        seen: dict[str, int] = {}
        for i, g in enumerate(self.agents.generators):
            if g.endpoint in seen:
                raise ValueError(
                    f"agents.generators[{i}].endpoint: {g.endpoint!r} is already used by agents.generators[{seen[g.endpoint]}] "
                    "(one generator per endpoint; use paths_per_temperature for more samples from one model)"
                )
            seen[g.endpoint] = i
        simulated = sorted(n for n, e in self.endpoints.items() if is_simulated_model(e.model))
        if simulated and len(simulated) != len(self.endpoints):
            real = sorted(set(self.endpoints) - set(simulated))
            raise ValueError(
                f"endpoints mix simulated models ({', '.join(simulated)}: model names starting with "
                f"{SIM_MODEL_PREFIX!r}) with real ones ({', '.join(real)}); simulated work must never pass for real"
            )
        for key, role, agent in self._prompted_agents():
            if agent.prompt is not None:
                try:
                    check_template(PromptTemplate(role, agent.prompt.text, origin=agent.prompt.path))
                except PromptError as exc:
                    raise ValueError(f"{key}.prompt: {exc}") from None
        if self.answer_guard in ("verifier", "both") and "path_answer" not in self.prompt("verify").text:
            raise ValueError(
                f"answer_guard: {self.answer_guard!r} reads the verifier's path_answer, but the verify prompt "
                "does not ask for it (add a path_answer field to its JSON, or use answer_guard: extracted)"
            )
        total = self.paths_per_question
        if self.tiers.easy_min_correct > total:
            raise ValueError(
                f"tiers.easy_min_correct: {self.tiers.easy_min_correct} exceeds the {total} paths generated per question"
            )
        return self

    def _prompted_agents(self) -> list[tuple[str, str, Any]]:
        a = self.agents
        out: list[tuple[str, str, Any]] = [
            (f"agents.generators[{i}]", "generate", g) for i, g in enumerate(a.generators)
        ]
        for key, role in (
            ("verifier", "verify"),
            ("ranker", "rank"),
            ("refiner", "refine"),
            ("regenerator", "regenerate"),
            ("summarizer", "summarize"),
        ):
            out.append((f"agents.{key}", role, getattr(a, key)))
        return out

    def prompt(self, role: str, generator: int = 0) -> PromptTemplate:
        """The template ``role`` uses: the agent's own file, else the profile's (``generator`` picks the generator)."""
        agents = {r: ag for _, r, ag in self._prompted_agents() if r != "generate"}
        agent = self.agents.generators[generator] if role == "generate" else agents.get(role)
        if agent is not None and agent.prompt is not None:
            return PromptTemplate(role, agent.prompt.text, origin=agent.prompt.path)
        return get_template(role, self.prompts)

    def prompt_variants(self) -> list[PromptTemplate]:
        """Every template this pipeline can send, with its re-ask variants (for the prompt_templates table)."""
        bases = [self.prompt("generate", i) for i in range(len(self.agents.generators))]
        bases += [self.prompt(r) for r in ("verify", "rank", "refine", "regenerate", "summarize")]
        out: dict[str, PromptTemplate] = {}
        for t in bases:
            for v in (t, t.reask("truncated"), t.reask("unparseable")):
                out.setdefault(v.sha256, v)
        return list(out.values())

    @property
    def simulated(self) -> bool:
        """Every model is the simulator's (names start with ``sim/``): see ``reasonmed/simulated.py``."""
        return all(is_simulated_model(e.model) for e in self.endpoints.values())

    @property
    def paths_per_question(self) -> int:
        return sum(len(g.temperatures) * g.paths_per_temperature for g in self.agents.generators)

    _unexpanded: dict[str, Any] | None = PrivateAttr(default=None)  # the file before ${VAR} expansion

    @cached_property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.snapshot(), sort_keys=True).encode()).hexdigest()

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe copy stored with every run: values given as ``${VAR}`` appear as ``${VAR}``, never
        expanded, and any credential written in the file itself (URL password, a token in engine_args)
        is masked. API keys are never in here anyway: only env var or Secret block names."""
        data = self.model_dump(mode="json")
        if self._unexpanded is not None:
            data = _restore_refs(data, self._unexpanded)
        return redact_data(data)


# --------------------------------------------------------------------------- loading

_MISSING = object()
PIPELINE_FILE_MAX_BYTES = 256 << 10  # the shipped files are under 6 KB


def _restore_refs(dumped: Any, raw: Any) -> Any:
    """``dumped`` (the validated, expanded config) with every value the file gave as a ``${VAR}`` reference
    put back as that reference: the snapshot records where a value comes from, never the value."""
    if env_refs.has_reference(raw):
        return raw
    if isinstance(dumped, dict) and isinstance(raw, dict):
        return {k: _restore_refs(v, raw.get(k, _MISSING)) for k, v in dumped.items()}
    if isinstance(dumped, list) and isinstance(raw, list) and len(raw) == len(dumped):
        return [_restore_refs(d, r) for d, r in zip(dumped, raw, strict=True)]
    return dumped


def _lookup(name: str) -> str | None:
    """``REASONMED_X`` is the setting ``x`` in force when it was given (so a value the CLI passes through
    ``temporary_settings``, e.g. the simulator's URL, reaches the pipeline file); anything else, or a
    setting left at its default, comes from the environment."""
    field = name.removeprefix("REASONMED_").lower()
    if name.startswith("REASONMED_") and field in Settings.model_fields:
        settings = get_settings()
        if field in settings.model_fields_set and getattr(settings, field) is not None:
            return str(getattr(settings, field))
    return os.environ.get(name)


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem, each naming the key, e.g. ``deploy/x.yaml: agents.verifier.endpoint: ...``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        key = _format_location(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see deploy/pipeline.paper.yaml for every key)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{source}: {key}: {msg}" if key else f"{source}: {msg}")
    return "\n".join(lines)


def parse_pipeline_config(
    data: dict[str, Any], source: str = "pipeline config", base_dir: Path | None = None
) -> PipelineConfig:
    """Validate a pipeline mapping; ``base_dir`` is where relative ``prompt:`` files are looked up."""
    try:
        return PipelineConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def _pipeline_text(path: Path | str | None) -> tuple[str, str]:
    if path is None:
        return resources.files("reasonmed").joinpath(
            "default_pipeline.yaml"
        ).read_text(), "default pipeline (simulator)"
    p = Path(path)
    try:
        return read_small_text(p, PIPELINE_FILE_MAX_BYTES), str(p)
    except FileRefused as exc:
        raise ConfigError(f"pipeline config {p}: {exc}") from None


def _pipeline_file(path: Path | str | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The pipeline file as written (parsed) and with its ``${VAR}`` references expanded, and its name."""
    text, source = _pipeline_text(path)
    try:
        raw = safe_yaml.load(text)
    except safe_yaml.YamlRefused as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return raw, env_refs.expand(raw, _lookup), source
    except env_refs.UnsetVariable as exc:
        raise ConfigError(f"{source}: {exc}") from None


def read_pipeline_data(path: Path | str | None = None) -> tuple[dict[str, Any], str]:
    """The pipeline file as a dict with ``${VAR:-default}`` references expanded, and its display name."""
    _raw, data, source = _pipeline_file(path)
    return data, source


def load_pipeline_config(path: Path | str | None = None) -> PipelineConfig:
    """Load a pipeline YAML file; ``None`` means the packaged default that targets the simulator."""
    raw, data, source = _pipeline_file(path)
    base_dir = Path(path).resolve().parent if path is not None else None
    cfg = parse_pipeline_config(data, source, base_dir=base_dir)
    cfg._unexpanded = raw  # what the snapshot shows for values from the environment
    return cfg


# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """Settings from ``REASONMED_*`` environment variables (and a ``.env`` file if present); a command or a
    test overrides them in a context (``temporary_settings``), never by writing the environment."""

    model_config = SettingsConfigDict(env_prefix="REASONMED_", env_file=".env", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///reasonmed.db",
        description="SQLAlchemy URL; production: postgresql+psycopg://user@host/db",
    )
    pipeline_config: Path | None = Field(default=None, description="pipeline YAML; unset = simulator default")
    shard_size: int = Field(default=200, ge=1, le=100_000, description="questions per child flow run")
    questions_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="questions processed at once; unset = enough to fill every endpoint cap",
    )
    write_batch: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="most stage writes (of different questions) committed in one transaction; 1 = a "
        "transaction per write. Each stage still goes on only once its own write has committed",
    )
    claim_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="a worker's hold on claimed questions, renewed every third of it while the worker lives; "
        "a killed run's questions are free again this long after it died",
    )
    share_caps: bool = Field(
        default=True,
        description="hold each server's max_in_flight across every orchestrator that sends to it (lease rows "
        "in the pipeline database, llm/shared_caps.py); false: each process has the whole cap",
    )
    run_lock_wait_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="on Postgres, how long a nightly run waits for the lock that serialises run starts before "
        "it ends Failed, naming the session that holds it (a run holds it for milliseconds)",
    )
    question_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="failed attempts (one per run at most) after which a question is set aside until "
        "`reasonmed retry`; a permanent failure sets it aside at once",
    )
    batch_wait_s: float = Field(
        default=0.0,
        ge=0,
        le=7 * 86400,
        description="how long a build waits for the batches it submitted (endpoints with mode batch) and goes on "
        "with their questions in the same run; 0 submits and ends, a later run collects",
    )
    batch_poll_s: float = Field(
        default=30.0, gt=0, le=3600, description="seconds between polls of open batches while a build waits"
    )
    unusable_alarm_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a run whose outputs of one role (generator, verifier, ranker) were unusable at this rate or "
        "more (over at least 10 outputs) ends as degraded, non-zero: the model or prompt needs attention",
    )
    ingest_max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES,
        ge=1024,
        description="one input record (JSON line, CSV row, PubMedQA member) larger than this is rejected unread",
    )
    ingest_max_field_chars: int = Field(
        default=DEFAULT_MAX_FIELD_CHARS,
        ge=100,
        description="one question, context or option text longer than this rejects its record",
    )
    ingest_max_depth: int = Field(
        default=DEFAULT_MAX_DEPTH,
        ge=2,
        le=500,
        description="JSON nesting deeper than this rejects its record",
    )
    ingest_max_metadata_bytes: int = Field(
        default=DEFAULT_MAX_METADATA_BYTES,
        ge=1024,
        description="a record's other fields (kept as questions.metadata) beyond this JSON size are left out "
        "and named under dropped_over_cap",
    )
    ingest_max_parquet_page_bytes: int = Field(
        default=DEFAULT_MAX_PAGE_BYTES,
        ge=1 << 20,
        description="a Parquet row group holding a page that decompresses to more than this is not read "
        "(one error row)",
    )
    export_dir: Path = Field(default=Path("exports"))
    s3_endpoint_url: str | None = Field(default=None, description="for MinIO and other S3-compatible stores")
    sim_url: str | None = Field(
        default=None,
        description="the simulator's base URL, where the packaged default pipeline points its endpoints",
    )
    log_level: str = Field(default="INFO")

    @property
    def ingest_limits(self) -> Limits:
        return Limits(
            self.ingest_max_record_bytes,
            self.ingest_max_field_chars,
            self.ingest_max_depth,
            self.ingest_max_metadata_bytes,
            self.ingest_max_parquet_page_bytes,
        )

    @model_validator(mode="after")
    def _db_url(self) -> Settings:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", self.database_url):
            raise ValueError(
                "database_url must be a sqlite:/// or postgresql+psycopg:// URL "
                f"(got {redact_url(self.database_url)!r})"
            )
        return self


# The settings in force, as Prefect keeps its own (prefect.settings.context): a context variable set
# only by ``temporary_settings``, which restores the previous value on leaving. Unset, the settings are
# read from the environment, as they stand when asked for.
_current: ContextVar[Settings | None] = ContextVar("reasonmed_settings", default=None)


def load_settings(**values: Any) -> Settings:
    """Settings from the environment, with ``values`` winning; a bad value fails in one line per key."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = "REASONMED_" + _format_location(err["loc"]).upper() if err["loc"] else "settings"
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None


def get_settings() -> Settings:
    """The settings of the innermost ``temporary_settings``, else those of the environment."""
    current = _current.get()
    return current if current is not None else load_settings()


@contextmanager
def settings_scope() -> Iterator[None]:
    """Whatever ``override_settings`` sets inside the block ends with it (a CLI command is one scope)."""
    token = _current.set(_current.get())
    try:
        yield
    finally:
        _current.reset(token)


def override_settings(**updates: Any) -> Settings:
    """``updates`` win over the settings in force, until the enclosing ``settings_scope`` ends."""
    base = get_settings()
    settings = load_settings(**({k: getattr(base, k) for k in base.model_fields_set} | updates))
    _current.set(settings)
    return settings


@contextmanager
def temporary_settings(**updates: Any) -> Iterator[Settings]:
    """Settings with ``updates`` in force inside the block (and in what it starts: threads started with
    its context, tasks, flows), the previous ones again after it."""
    with settings_scope():
        yield override_settings(**updates)
