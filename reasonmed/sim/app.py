"""The simulator's routes: an OpenAI-compatible chat API with engine emulation and fault injection, and
the Batch API over the same chat path (reasonmed/sim/batches.py).

Everything it serves is labelled as simulated (header, fingerprint, ``owned_by``, text prefix) so no
row it produces can pass for a real model's output.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reasonmed.sim.answer_keys import AnswerKeys
from reasonmed.sim.batches import BatchService
from reasonmed.sim.behaviour import (
    Behaviour,
    Choice,
    ParsedPrompt,
    Role,
    SimRequest,
    Variant,
    detect_role,
    finish_choice,
    parse_prompt,
    prompt_tokens,
    respond,
)
from reasonmed.sim.engine import EngineEmulator
from reasonmed.sim.faults import FaultPlan, TargetedFault
from reasonmed.sim.http import DROP, Drop, Request, Response
from reasonmed.sim.lengths import LengthDraw, profile_named
from reasonmed.sim.metrics import SimMetrics
from reasonmed.sim.prefix_cache import PrefixCache
from reasonmed.sim.rate_limit import SimRateLimit
from reasonmed.sim.replies import error_reply as _error
from reasonmed.sim.replies import ok_reply as _ok
from reasonmed.sim.script import Script, load_script
from reasonmed.sim.settings import SimSettings
from reasonmed.simulated import SIM_MODEL_PREFIX, is_simulated_model

log = logging.getLogger(__name__)

FINGERPRINT = "reasonmed-simulator"
# Listed when no model is configured or served yet: a name /v1/chat/completions accepts, so a client that
# picks the first listed model (as many do) gets an answer.
DEFAULT_MODEL = SIM_MODEL_PREFIX + FINGERPRINT
SERVER_HEADERS = (("x-reasonmed-simulator", "1"), ("server", FINGERPRINT))


class BadRequest(ValueError):
    pass


class SimApp:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.metrics = SimMetrics()
        self.faults = FaultPlan(
            settings.fault_rate,
            settings.fault_kinds,
            settings.faults,
            settings.fault_seed,
            settings.fault_script,
        )
        self.targeted = [TargetedFault.parse(rule) for rule in settings.targeted_faults]
        self.engine = EngineEmulator(
            max_num_seqs=settings.max_num_seqs,
            base_latency_ms=settings.base_latency_ms,
            per_token_ms=settings.per_token_ms,
            metrics=self.metrics,
        )
        self.behaviour = Behaviour(
            accuracy=dict(settings.accuracy),
            default_accuracy=settings.default_accuracy,
            refine_accuracy=settings.refine_accuracy,
            verifier_error_rate=settings.verifier_error_rate,
            styles=dict(settings.styles),
            default_style=settings.default_style,
        )
        self.keys = AnswerKeys(settings.questions_db) if settings.questions_db else None
        self.script = Script(load_script(Path(settings.script))) if settings.script else None
        self.rate_limit = (
            SimRateLimit(
                settings.rate_limit_rpm,
                settings.rate_limit_tpm,
                settings.rate_limit_window_s,
                time.monotonic(),
                send_headers=settings.rate_limit_headers,
            )
            if settings.rate_limit_rpm is not None or settings.rate_limit_tpm is not None
            else None
        )
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self.prefix_cache = PrefixCache()
        self.lengths = (
            LengthDraw(profile_named(settings.length_profile), settings.fault_seed)
            if settings.length_profile
            else None
        )
        self.running = asyncio.Event()  # cleared by /admin/pause: the engine stalls, requests wait
        self.running.set()
        self.batches = BatchService(settings, self.metrics, self._batch_line)

    async def handle(self, req: Request) -> Response | Drop:
        route = (req.method, req.path.rstrip("/") or "/")
        if route == ("POST", "/v1/chat/completions"):
            return await self.chat(req)
        if route == ("GET", "/health"):
            return _ok({"status": "ok", "simulator": True})
        if route == ("GET", "/v1/models"):
            return self.models()
        if route == ("GET", "/metrics"):
            return Response(200, self.metrics.render().encode(), content_type="text/plain; version=0.0.4")
        if route == ("POST", "/admin/reset"):
            self.metrics.reset()
            return _ok({"status": "reset"})
        if route == ("POST", "/admin/faults"):
            return self.set_targeted(req.body)
        if route == ("POST", "/admin/pause"):
            return self.set_paused(req.body)
        if route == ("GET", "/admin/questions"):
            return _ok({"questions": self.prefix_cache.questions()})
        batch_reply = await self.batches.handle(req)
        if batch_reply is not None:  # the Batch API's routes (a wrong method there is its 405)
            return batch_reply
        known = {
            "/v1/chat/completions",
            "/health",
            "/v1/models",
            "/metrics",
            "/admin/reset",
            "/admin/faults",
            "/admin/pause",
            "/admin/questions",
        }
        if route[1] in known:
            return _error(405, f"method {req.method} not allowed on {req.path}")
        return _error(
            404, f"no route {req.method} {req.path} (this is the reasonmed simulator)", "not_found_error"
        )

    def body_limits(self) -> dict[str, int]:
        """Paths whose bodies may exceed http.MAX_BODY_BYTES, for ``http.serve``."""
        return self.batches.body_limits()

    async def _batch_line(self, body: bytes, fails: bool) -> Response | Drop:
        return await self.complete(body, batch=True, forced="line_failure" if fails else None)

    def set_targeted(self, body: bytes) -> Response:
        """``{"rules": ["*:*=500"]}`` replaces the targeted faults: an endpoint that dies mid-run, in tests."""
        try:
            rules = json.loads(body or b"{}").get("rules", [])
            self.targeted = [TargetedFault.parse(str(r)) for r in rules]
        except (ValueError, AttributeError) as exc:
            return _error(400, f"faults: {exc}")
        return _ok({"rules": [f"{t.role}:{t.marker}={t.kind}" for t in self.targeted]})

    def set_paused(self, body: bytes) -> Response:
        """``{"paused": true}`` holds every chat request until ``{"paused": false}``: a run that stays alive
        at a known point however fast the machine is, in tests."""
        try:
            paused = json.loads(body or b"{}").get("paused")
        except (ValueError, AttributeError) as exc:
            return _error(400, f"pause: {exc}")
        if not isinstance(paused, bool):
            return _error(400, 'pause: expected {"paused": true|false}')
        (self.running.clear if paused else self.running.set)()
        return _ok({"paused": paused})

    def models(self) -> Response:
        """Only names the chat route serves: every listed model must be usable as listed."""
        served = {*self.behaviour.accuracy, *self.metrics.models, *self.metrics.batch_models}
        names = sorted(m for m in served if is_simulated_model(m))
        names = names or [DEFAULT_MODEL]
        created = int(time.time())
        card = {"object": "model", "created": created, "owned_by": FINGERPRINT}
        if self.settings.max_model_len is not None:  # vLLM's ModelCard field
            card["max_model_len"] = self.settings.max_model_len
        data = [{"id": m, **card} for m in names]
        # The simulator answers any model name; it says so, so an endpoint preflight does not reject it.
        return _ok({"object": "list", "data": data, "serves_any_model": True})

    async def chat(self, req: Request) -> Response | Drop:
        self.metrics.received(req.body)
        return await self.complete(req.body, authorized="authorization" in req.headers)

    async def complete(
        self, raw: bytes, *, authorized: bool = False, batch: bool = False, forced: str | None = None
    ) -> Response | Drop:
        """A chat-completions body through the interactive route's path: parsing, the context check, the
        rate limits, faults (targeted, then the plan), the engine, the (scripted) reply.

        ``batch``: a Batch API line (reasonmed/sim/batches.py): the same path without the rate limits,
        counted under ``batch_*`` rather than ``requests_*``; a ``hang`` ends at once as a 500 instead of
        holding the batch. ``forced`` is a fault the caller decided (``"line_failure"``: a 500); it takes
        no draw from the fault plan.
        """
        try:
            sim = parse_chat_request(raw)
        except BadRequest as exc:
            self.metrics.count("invalid", batch=batch)
            return _error(400, str(exc))
        if not is_simulated_model(sim.model):
            self.metrics.count("invalid", batch=batch)
            return _error(
                404,
                f"the simulator serves only simulated models, named {SIM_MODEL_PREFIX}... (asked for {sim.model!r}): "
                "its output must never pass for a real model's",
                "not_found_error",
            )
        refusal = self.context_refusal(sim)
        if refusal is not None:
            self.metrics.count("context", batch=batch)
            return refusal
        if self.rate_limit is None or batch:
            return await self._serve(sim, authorized=authorized, batch=batch, forced=forced)
        admission = self.rate_limit.admit(
            prompt_tokens(sim.messages) + (sim.max_tokens or 0) * sim.n, time.monotonic()
        )
        if not admission.admitted:
            self.metrics.count("limited")
            return _error(
                429,
                "Rate limit reached (simulated)",
                "rate_limit_error",
                headers=(("retry-after", str(admission.retry_after_s)), *admission.headers),
            )
        response = await self._serve(sim, authorized=authorized, batch=batch, forced=forced)
        if isinstance(response, Response):
            response.headers = (*response.headers, *admission.headers)
        return response

    async def _serve(
        self, sim: SimRequest, *, authorized: bool, batch: bool, forced: str | None
    ) -> Response | Drop:
        """A valid request within the limits: its faults, its engine time, its answer."""
        role = detect_role(sim.system, sim.user)
        self.metrics.enter(role=role, model=sim.model, authorized=authorized, batch=batch)
        try:
            await self.running.wait()
            rule = next((t for t in self.targeted if t.matches(role, sim.user)), None)
            fault = forced or (rule.kind if rule is not None else self.faults.draw())
            self.metrics.count(fault or "ok", batch=batch)
            refused = await self._refusal(fault, batch=batch)
            if refused is not None:
                return refused
            prompt = parse_prompt(sim.user)
            asked = prompt_tokens(sim.messages)
            self.metrics.prefix_cache_queries += asked
            cached = self.prefix_cache.serve(sim.system, prompt.question, asked)
            self.metrics.prefix_cache_hits += cached
            choices = await self._choices(sim, role, fault, prompt)
            if self.lengths is not None:
                draw = self.lengths
                choices = [
                    replace(c, completion_tokens=draw.tokens(role, c.completion_tokens)) for c in choices
                ]
            await self.engine.generate(max(c.completion_tokens for c in choices))
            if fault == "500":
                return _error(500, "simulated internal server error", "server_error")
            if fault == "line_failure":
                return _error(500, "simulated batch line failure (--batch-line-failure-rate)", "server_error")
            if fault == "drop":
                return DROP
            return self._completion(sim, choices, fault, batch=batch, cached=cached)
        except asyncio.CancelledError:
            if not batch:  # a batch line is cancelled with its batch, not by a client hanging up
                self.metrics.client_disconnects += 1
            raise
        finally:
            self.metrics.leave(model=sim.model, batch=batch)

    async def _refusal(self, fault: str | None, *, batch: bool) -> Response | None:
        """The faults answered before any engine time (None: the request goes on)."""
        if fault == "400":
            return _error(
                400,
                "This model's maximum context length is 4096 tokens. However, you requested more (simulated)",
                "BadRequestError",
            )
        if fault == "429":
            return _error(
                429,
                "simulated rate limit",
                "rate_limit_error",
                headers=(("retry-after", f"{self.settings.retry_after:g}"),),
            )
        if fault == "hang":
            if batch:  # a batch line does not hold its batch for --hang-seconds: it fails
                return _error(500, "simulated hang (a batch line fails with 500)", "server_error")
            await asyncio.sleep(self.settings.hang_seconds)
            return _error(504, "simulated hang ended", "server_error")
        return None

    async def _choices(
        self, sim: SimRequest, role: Role, fault: str | None, prompt: ParsedPrompt
    ) -> list[Choice]:
        correct = None
        if role in ("generate", "evaluate") and self.keys is not None and prompt.options:
            correct = await self.keys.find(prompt.question, prompt.options)
        variant: Variant = "truncate" if fault == "truncate" else "noanswer" if fault == "noanswer" else "ok"
        scripted = self._scripted(sim, role, prompt) if self.script is not None else None
        if scripted is not None:
            return [finish_choice(scripted, sim, variant, (i,)) for i in range(sim.n)]
        _, choices = respond(sim, self.behaviour, correct=correct, variant=variant, role=role, prompt=prompt)
        return choices

    def _completion(
        self, sim: SimRequest, choices: list[Choice], fault: str | None, *, batch: bool, cached: int = 0
    ) -> Response:
        """``cached``: the prompt tokens the emulated prefix cache held, reported as OpenAI and vLLM (with
        --enable-prompt-tokens-details) do, in ``usage.prompt_tokens_details.cached_tokens``."""
        p_tokens = prompt_tokens(sim.messages)
        c_tokens = sum(c.completion_tokens for c in choices)
        payload = {
            "id": f"chatcmpl-sim-{self._id_prefix}-{next(self._ids):x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": sim.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(choices)
            ],
            "usage": {
                "prompt_tokens": p_tokens,
                "completion_tokens": c_tokens,
                "total_tokens": p_tokens + c_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
        body = json.dumps(payload).encode()
        if fault == "malformed":
            return Response(200, body[: len(body) // 2])  # a 200 whose JSON stops half-way
        self.metrics.tokens(p_tokens, c_tokens, batch=batch)
        return Response(200, body)

    def _scripted(self, sim: SimRequest, role: str, prompt: ParsedPrompt) -> str | None:
        assert self.script is not None
        return self.script.reply(
            role=role,
            user=sim.user,
            model=sim.model,
            temperature=sim.temperature,
            seed=sim.seed,
            options=prompt.options,
            question=prompt.question,
            path=prompt.path,
        )

    def context_refusal(self, sim: SimRequest) -> Response | None:
        """vLLM's 400 for a request whose prompt plus max_tokens exceeds ``--max-model-len`` (None: it fits)."""
        limit = self.settings.max_model_len
        if limit is None:
            return None
        p_tokens = prompt_tokens(sim.messages)
        if p_tokens + (sim.max_tokens or 0) <= limit and p_tokens < limit:
            return None
        return _error(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{p_tokens + (sim.max_tokens or 0)} tokens ({p_tokens} in the messages, {sim.max_tokens or 0} in "
            "the completion). Please reduce the length of the messages or completion. (simulated)",
            "BadRequestError",
        )

    def close(self) -> None:
        self.batches.close()
        if self.keys is not None:
            self.keys.close()


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        parts = [p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(value):
            return "".join(str(p) for p in parts)
    raise BadRequest(f"{where}: content must be a string or a list of text parts")


def _number(body: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise BadRequest(f"{key} must be a number between {lo:g} and {hi:g}")
    return float(value)


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{key} must be an integer between {lo} and {hi}")
    return value


def parse_chat_request(raw: bytes) -> SimRequest:
    """Validate a chat-completions body the way vLLM does (400 on anything it would reject)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    parsed: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a role")
        parsed.append((m["role"], _content(m.get("content"), f"messages[{i}]")))
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise BadRequest("stop must be a string or a list of strings")
    max_tokens = _int(body, "max_tokens", 1, 10_000_000)
    if max_tokens is None:
        max_tokens = _int(body, "max_completion_tokens", 1, 10_000_000)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("seed must be an integer")
    return SimRequest(
        model=model,
        messages=tuple(parsed),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        max_tokens=max_tokens,
        n=_int(body, "n", 1, 128) or 1,
        seed=seed,
        stop=stops,
    )
