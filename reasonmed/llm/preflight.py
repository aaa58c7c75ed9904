"""Endpoint preflight: one ``GET {base_url}/models`` per server before any question is claimed.

A dead or misconfigured endpoint used to be found by retries, question after question. Asking each
server once, up front, turns that into one line naming the endpoint: unreachable, refusing the key, or
serving another model than the pipeline file names. A server with no ``/models`` route (some
OpenAI-compatible engines) is reachable, so it passes, with a note that its model name went unchecked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from reasonmed.config import EndpointConfig
from reasonmed.llm.urls import secrets_of, split_credentials
from reasonmed.redact import redact, redact_url
from reasonmed.simulated import SIM_MODEL_PREFIX, is_simulated_model

ANY_MODEL = "*"


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    endpoint: str
    target: str  # the URL asked (credentials masked), or "in-process"
    ok: bool
    detail: str  # what was found: the problem when not ok, else a short note

    def line(self) -> str:
        """Printed by ``config check --ping`` and ``run``, and the message of EndpointUnavailable (so a
        flow run's state and events): masked again, whatever the fields were made from."""
        return redact(
            f"endpoint {self.endpoint} ({self.target}): {'ok' if self.ok else 'FAILED'}: {self.detail}"
        )


class EndpointUnavailable(RuntimeError):
    """The preflight found endpoints that cannot serve the run; the message has one line per endpoint."""

    def __init__(self, checks: list[EndpointCheck]) -> None:
        self.checks = checks
        super().__init__("; ".join(c.line() for c in checks))


async def _fetch_models(
    session: aiohttp.ClientSession, url: str, api_key: str | None
) -> tuple[int | None, list[str] | None, str]:
    """(HTTP status, served model ids or None, problem text) for one server."""
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
    url, basic = split_credentials(url)
    secrets = secrets_of(basic, api_key)
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, auth=None if api_key else basic
        ) as response:
            raw = await response.content.read(1 << 20)
            if response.status != 200:
                return response.status, None, f"HTTP {response.status}"
    except TimeoutError:
        return None, None, "no answer in time"
    except (aiohttp.ClientError, OSError) as exc:
        return None, None, redact(f"unreachable ({type(exc).__name__}: {exc})", secrets)
    try:
        data = json.loads(raw)
        ids = [m["id"] for m in data["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    except (ValueError, KeyError, TypeError):
        return 200, None, "answered /models with something that is not a model list"
    if data.get("serves_any_model") is True:  # the project's simulator answers every model name
        return 200, [ANY_MODEL], ""
    return 200, ids, ""


def _judge(
    name: str, cfg: EndpointConfig, url: str, status: int | None, ids: list[str] | None, problem: str
) -> EndpointCheck:
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
            return EndpointCheck(name, url, True, f"serves {cfg.model}")
        served = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "") or "nothing"
        return EndpointCheck(
            name, url, False, f"serves {served}, not {cfg.model} (fix `model:` or the server's model name)"
        )
    if status == 404:
        return EndpointCheck(
            name, url, True, "reachable; it has no /models route, so the model name is unchecked"
        )
    if status in (401, 403):
        return EndpointCheck(
            name, url, False, f"refused the API key ({problem}); check api_key_env / api_key_secret"
        )
    if status is not None and status < 500 and status != 200:
        return EndpointCheck(name, url, False, f"{problem} on /models; check base_url (it should end in /v1)")
    return EndpointCheck(name, url, False, problem or f"HTTP {status}")


async def check_endpoints(
    endpoints: Mapping[str, EndpointConfig], api_keys: Mapping[str, str | None], *, timeout_s: float = 10.0
) -> list[EndpointCheck]:
    """One check per endpoint, in the order given; each server (base URL and key) is asked once."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    asked: dict[tuple[str, str | None], asyncio.Task[tuple[int | None, list[str] | None, str]]] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, cfg in endpoints.items():
            if cfg.kind != "openai" or not cfg.base_url:
                continue
            key = (cfg.base_url.rstrip("/") + "/models", api_keys.get(name))
            if key not in asked:
                asked[key] = asyncio.ensure_future(_fetch_models(session, key[0], key[1]))
        if asked:
            await asyncio.wait(asked.values())
    checks = []
    for name, cfg in endpoints.items():
        if cfg.kind != "openai" or not cfg.base_url:
            checks.append(EndpointCheck(name, "in-process", True, "in-process engine; loaded on first use"))
            continue
        url = cfg.base_url.rstrip("/") + "/models"
        status, ids, problem = asked[(url, api_keys.get(name))].result()
        checks.append(_judge(name, cfg, redact_url(url), status, ids, problem))
    return checks


def require_available(checks: list[EndpointCheck]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise EndpointUnavailable(failed)
