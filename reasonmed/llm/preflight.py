"""Endpoint preflight: one ``GET {base_url}/models`` per server before any question is claimed.

A dead or misconfigured endpoint used to be found by retries, question after question. Asking each
server once, up front, turns that into one line naming the endpoint: unreachable, refusing the key, or
serving another model than the pipeline file names. A server with no ``/models`` route (some
OpenAI-compatible engines) is reachable, so it passes, with a note that its model name went unchecked.

The same answer carries the server's context length where it reports one: vLLM's ``/models`` entries have
``max_model_len``. A server whose entries have none is asked ``GET /props`` too, where llama.cpp's own server
(``llama-server``) reports ``default_generation_settings.n_ctx``; llama-cpp-python's server reports its
``--n_ctx`` nowhere (0.3.x: ``/v1/models`` lists ids only, and it has no ``/props``), nor does a hosted API,
so for those the pipeline file's ``context_tokens`` is all there is. The check's ``context``
(llm/context.py) holds both, and the run's backends fit ``max_tokens`` to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from reasonmed.config import EndpointConfig
from reasonmed.llm.context import ContextLength, declared_context
from reasonmed.llm.urls import secrets_of, split_credentials
from reasonmed.redact import redact, redact_url
from reasonmed.simulated import SIM_MODEL_PREFIX, is_simulated_model

ANY_MODEL = "*"
_MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    endpoint: str
    target: str  # the URL asked (credentials masked), or "in-process"
    ok: bool
    detail: str  # what was found: the problem when not ok, else a short note
    context: ContextLength = ContextLength()
    replica: int | None = None  # which of a replicated endpoint's servers (llm/replicas.py)
    # A replica that could not be reached while another serves: the run goes on without it.
    left_out: bool = False

    def line(self) -> str:
        """Printed by ``config check --ping`` and ``run``, and the message of EndpointUnavailable (so a
        flow run's state and events): masked again, whatever the fields were made from."""
        if self.left_out:
            state = f"LEFT OUT: {self.detail}; its questions go to the other replicas"
        elif self.ok:
            state = f"ok: {self.detail}; {self.context.describe()}"
        else:
            state = f"FAILED: {self.detail}"
        name = self.endpoint if self.replica is None else f"{self.endpoint}[{self.replica}]"
        return redact(f"endpoint {name} ({self.target}): {state}")


def contexts_of(checks: list[EndpointCheck]) -> dict[str, ContextLength]:
    """Each usable endpoint's context; of a replicated endpoint, its smallest replica's (one budget fits all)."""
    out: dict[str, ContextLength] = {}
    for c in checks:
        if not c.ok or c.left_out:
            continue
        known = out.get(c.endpoint)
        tokens = c.context.tokens
        if known is None or (tokens is not None and (known.tokens is None or tokens < known.tokens)):
            out[c.endpoint] = c.context
    return out


def left_out_replicas(checks: list[EndpointCheck]) -> dict[str, dict[int, str]]:
    """endpoint -> {replica index: what the preflight found} for the replicas the run goes on without."""
    out: dict[str, dict[int, str]] = {}
    for c in checks:
        if c.left_out and c.replica is not None:
            out.setdefault(c.endpoint, {})[c.replica] = c.detail
    return out


class EndpointUnavailable(RuntimeError):
    """The preflight found endpoints that cannot serve the run; the message has one line per endpoint."""

    def __init__(self, checks: list[EndpointCheck]) -> None:
        self.checks = checks
        super().__init__("; ".join(c.line() for c in checks))


@dataclass(frozen=True, slots=True)
class _Served:
    """What one server answered: its /models status, model ids or the problem, and context lengths."""

    status: int | None
    ids: list[str] | None
    problem: str
    contexts: Mapping[str, int] = field(default_factory=dict)  # model id -> max_model_len on /models
    n_ctx: int | None = None  # llama.cpp's /props, asked only when /models reports no context


async def _get_json(
    session: aiohttp.ClientSession, url: str, api_key: str | None
) -> tuple[int | None, Any, str]:
    """(HTTP status, parsed JSON body or None, problem text) of one GET."""
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
    url, basic = split_credentials(url)
    secrets = secrets_of(basic, api_key)
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, auth=None if api_key else basic
        ) as response:
            raw = await response.content.read(_MAX_BODY)
            if response.status != 200:
                return response.status, None, f"HTTP {response.status}"
    except TimeoutError:
        return None, None, "no answer in time"
    except (aiohttp.ClientError, OSError) as exc:
        return None, None, redact(f"unreachable ({type(exc).__name__}: {exc})", secrets)
    try:
        return 200, json.loads(raw), ""
    except (ValueError, RecursionError):  # a body nested too deep is no model list either
        return 200, None, "not JSON"


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _props_n_ctx(body: Any) -> int | None:
    """llama-server's ``/props``: ``default_generation_settings.n_ctx`` (the context of one slot)."""
    if not isinstance(body, dict):
        return None
    settings = body.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return _positive_int(n_ctx) or _positive_int(body.get("n_ctx"))


async def _ask_server(session: aiohttp.ClientSession, base_url: str, api_key: str | None) -> _Served:
    """One server's /models (and, when that reports no context, its /props)."""
    status, data, problem = await _get_json(session, base_url + "/models", api_key)
    if status != 200:
        return _Served(status, None, problem)
    try:
        entries = [m for m in data["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    except (KeyError, TypeError):
        return _Served(200, None, "answered /models with something that is not a model list")
    contexts = {m["id"]: n for m in entries if (n := _positive_int(m.get("max_model_len"))) is not None}
    ids = [m["id"] for m in entries]
    if data.get("serves_any_model") is True:  # the project's simulator answers every model name
        ids = [ANY_MODEL]
    n_ctx = None
    if not contexts:
        root = base_url.removesuffix("/v1")
        props_status, props, _ = await _get_json(session, root + "/props", api_key)
        n_ctx = _props_n_ctx(props) if props_status == 200 else None
    return _Served(200, ids, "", contexts, n_ctx)


def _judge(name: str, cfg: EndpointConfig, url: str, served: _Served) -> EndpointCheck:
    status, ids, problem = served.status, served.ids, served.problem
    if status == 200 and ids is not None:
        if ids == [ANY_MODEL] and not is_simulated_model(cfg.model):
            return EndpointCheck(
                name,
                url,
                False,
                f"is the project's simulator, which serves only models named {SIM_MODEL_PREFIX}..., not {cfg.model} "
                "(point base_url at the real server)",
            )
        if cfg.model in ids or ids == [ANY_MODEL]:
            return EndpointCheck(name, url, True, f"serves {cfg.model}", _context(cfg, served))
        served_ids = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "") or "nothing"
        return EndpointCheck(
            name,
            url,
            False,
            f"serves {served_ids}, not {cfg.model} (fix `model:` or the server's model name)",
        )
    if status == 404:
        return EndpointCheck(
            name,
            url,
            True,
            "reachable; it has no /models route, so the model name is unchecked",
            ContextLength(declared=cfg.context_tokens),
        )
    if status in (401, 403):
        return EndpointCheck(
            name, url, False, f"refused the API key ({problem}); check api_key_env / api_key_secret"
        )
    if status is not None and status < 500 and status != 200:
        return EndpointCheck(name, url, False, f"{problem} on /models; check base_url (it should end in /v1)")
    return EndpointCheck(name, url, False, problem or f"HTTP {status}")


def _context(cfg: EndpointConfig, served: _Served) -> ContextLength:
    """The model's max_model_len on /models (any entry's, smallest first, for the simulator), else /props'."""
    reported = served.contexts.get(cfg.model)
    if reported is None and served.ids == [ANY_MODEL] and served.contexts:
        reported = min(served.contexts.values())
    return ContextLength(declared=cfg.context_tokens, reported=reported or served.n_ctx)


async def check_endpoints(
    endpoints: Mapping[str, EndpointConfig], api_keys: Mapping[str, str | None], *, timeout_s: float = 10.0
) -> list[EndpointCheck]:
    """One check per endpoint (per replica of a replicated one), in the order given; each server (base URL
    and key) is asked once."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    asked: dict[tuple[str, str | None], asyncio.Task[_Served]] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, cfg in endpoints.items():
            if cfg.kind != "openai":
                continue
            for server in cfg.replica_configs:
                key = ((server.base_url or "").rstrip("/"), api_keys.get(name))
                if key not in asked:
                    asked[key] = asyncio.ensure_future(_ask_server(session, key[0], key[1]))
        if asked:
            await asyncio.wait(asked.values())
    checks: list[EndpointCheck] = []
    for name, cfg in endpoints.items():
        if cfg.kind != "openai":
            checks.append(
                EndpointCheck(
                    name, "in-process", True, "in-process engine; loaded on first use", declared_context(cfg)
                )
            )
            continue
        found = []
        for server in cfg.replica_configs:
            base = (server.base_url or "").rstrip("/")
            served = asked[(base, api_keys.get(name))].result()
            found.append((served, _judge(name, cfg, redact_url(base + "/models"), served)))
        if not cfg.replicas:
            checks.append(found[0][1])
            continue
        some_serve = any(check.ok for _, check in found)
        for i, (served, check) in enumerate(found):
            unreachable = served.status is None or served.status >= 500
            left_out = some_serve and not check.ok and unreachable
            checks.append(replace(check, replica=i, left_out=left_out, ok=check.ok or left_out))
    return checks


def require_available(checks: list[EndpointCheck]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise EndpointUnavailable(failed)
