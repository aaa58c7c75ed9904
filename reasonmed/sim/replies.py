"""The simulator's JSON replies: a success body, and the OpenAI-like error every route answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reasonmed.sim.http import Response


def error_reply(
    status: int, message: str, kind: str = "invalid_request_error", headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps({"object": "error", "error": {"message": message, "type": kind, "code": status}})
    return Response(status, body.encode(), headers=headers)


def ok_reply(payload: Mapping[str, Any]) -> Response:
    return Response(200, json.dumps(payload).encode())
