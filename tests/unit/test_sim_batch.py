"""The simulator's Batch API pieces that need no server: multipart parsing, input-file checks and
validation, the line-failure draw, and the batch flags' round trip through the command line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from reasonmed.sim.batches import BadUpload, check_jsonl, line_fails, parse_multipart, validate_lines
from reasonmed.sim.http import Request
from reasonmed.sim.settings import SimSettings

ENDPOINT = "/v1/chat/completions"


def multipart(data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """The content type and body a real client (httpx) sends."""
    request = httpx.Request("POST", "http://sim/v1/files", data=data, files=files)
    return request.headers["content-type"], request.read()


def request_line(custom_id: str, model: str = "sim/a", **overrides: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body, **overrides}


def jsonl(*items: object) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def test_multipart_bodies_are_split_into_their_fields() -> None:
    payload = b"line one\r\n--not-the-boundary\r\n\r\nend \xf0\x9f\x98\x80"
    ctype, body = multipart({"purpose": "batch"}, {"file": ("in put.jsonl", payload)})
    parts = parse_multipart(ctype, body)
    assert set(parts) == {"purpose", "file"}
    assert parts["purpose"].data == b"batch" and parts["purpose"].filename is None
    assert parts["file"].data == payload and parts["file"].filename == "in put.jsonl"


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"no delimiter at all"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nnever closed',
        ),
    ],
)
def test_malformed_multipart_is_refused(ctype: str, body: bytes) -> None:
    with pytest.raises(BadUpload):
        parse_multipart(ctype, body)


def test_a_batch_input_file_must_look_like_jsonl() -> None:
    check_jsonl(b"\n" + jsonl(request_line("a")) + b"{broken later lines are the batch's business\n")
    for bad in (b"", b"\n  \n", b"a,b\n1,2\n", b"[1, 2]\n", b'{"a":\n 1}\n', b"\xff{}\n"):
        with pytest.raises(BadUpload):
            check_jsonl(bad)


def test_validation_reports_every_bad_line_by_number() -> None:
    data = jsonl(
        request_line("a"),
        request_line("b", method="GET"),
        request_line(""),
        request_line("c", model="sim/other"),
        request_line("d", body=["not", "an", "object"]),
        [1, 2],
    )
    lines, errors = validate_lines(data, ENDPOINT, 100)
    assert [x.custom_id for x in lines] == ["a"]
    assert [(e["code"], e["line"], e["param"]) for e in errors] == [
        ("invalid_request", 2, "method"),
        ("missing_required_parameter", 3, "custom_id"),
        ("model_mismatch", 4, "body.model"),
        ("missing_required_parameter", 5, "body"),
        ("invalid_json_line", 6, None),
    ]


def test_a_valid_file_gives_its_requests_in_order() -> None:
    data = jsonl(request_line("x"), request_line("y")) + b"\n" + jsonl(request_line("z"))
    lines, errors = validate_lines(data, ENDPOINT, 3)
    assert errors == []
    assert [(x.index, x.custom_id) for x in lines] == [(0, "x"), (1, "y"), (2, "z")]
    assert json.loads(lines[2].body) == request_line("z")["body"]
    assert [e["code"] for e in validate_lines(data, ENDPOINT, 2)[1]] == ["too_many_tasks"]
    assert [e["code"] for e in validate_lines(b"\n\n", ENDPOINT, 2)[1]] == ["empty_file"]


def test_line_failures_depend_on_seed_and_custom_id_only() -> None:
    ids = [f"row-{i}" for i in range(2_000)]
    chosen = {c for c in ids if line_fails(3, c, 0.25)}
    assert 400 < len(chosen) < 600  # about a quarter
    assert chosen == {c for c in reversed(ids) if line_fails(3, c, 0.25)}
    assert chosen != {c for c in ids if line_fails(4, c, 0.25)}
    assert chosen <= {c for c in ids if line_fails(3, c, 0.5)}  # a higher rate fails a superset
    assert not any(line_fails(3, c, 0.0) for c in ids) and all(line_fails(3, c, 1.0) for c in ids)


def test_requests_carry_their_query_and_old_constructors_still_work() -> None:
    assert Request("GET", "/v1/batches", {}, b"").query == {}


def test_batch_flags_round_trip_through_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import reasonmed.sim.server as server
    from reasonmed.sim.cli import sim_server

    started: list[SimSettings] = []
    monkeypatch.setattr(server, "main", started.append)
    settings = SimSettings(
        port=0,
        batch_max_bytes=12_345,
        batch_max_requests=7,
        batch_delay_s=0.25,
        batch_window_s=3.5,
        batch_concurrency=3,
        batch_line_failure_rate=0.125,
    )
    app = typer.Typer()
    app.command()(sim_server)
    result = CliRunner().invoke(app, settings.to_argv())
    assert result.exit_code == 0, result.output
    assert started == [settings]
    assert SimSettings().to_argv().count("--batch-window-s") == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_max_bytes": 0},
        {"batch_max_requests": 0},
        {"batch_concurrency": 0},
        {"batch_delay_s": -1.0},
        {"batch_window_s": 0.0},
        {"batch_line_failure_rate": 1.5},
    ],
)
def test_batch_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimSettings(**bad)
