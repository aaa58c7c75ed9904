"""The simulator's OpenAI Batch API over real HTTP (a separate process): files, batches, their results,
validation, line failures, expiry, cancellation, listing and the metrics of each mode."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reasonmed.prompts import format_options, get_template
from reasonmed.sim.launcher import SimServer

MODEL = "sim/test-model"
OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Clopidogrel"}

FILE_KEYS = {
    "id",
    "object",
    "bytes",
    "created_at",
    "expires_at",
    "filename",
    "purpose",
    "status",
    "status_details",
}
BATCH_KEYS = {
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
}
EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def question(i: int, marker: str = "") -> list[dict[str, str]]:
    text = f"Case {i}: a 65-year-old man has crushing chest pain for 2 hours. Which drug first? {marker}"
    fields = {"question": text, "context_block": "", "options": format_options(OPTIONS)}
    return get_template("generate").render(**fields)


def body(i: int, marker: str = "", **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": question(i, marker), "temperature": 0.7, "seed": i, **params}


def line(custom_id: str, request: dict[str, Any], url: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": request}


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def upload(
    server: SimServer, data: bytes, *, purpose: str = "batch", name: str = "in.jsonl"
) -> httpx.Response:
    return httpx.post(
        server.base_url + "/files", data={"purpose": purpose}, files={"file": (name, data)}, timeout=30.0
    )


def create(server: SimServer, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    r = upload(server, jsonl(items))
    assert r.status_code == 200, r.text
    request = {
        "input_file_id": r.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    r = httpx.post(server.base_url + "/batches", json={**request, **extra}, timeout=10.0)
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def get_batch(server: SimServer, batch_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.base_url}/batches/{batch_id}", timeout=10.0)
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = r.json()
    return batch


def wait_for(
    server: SimServer, batch_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 8.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = get_batch(server, batch_id)
        if until(batch):
            return batch
        assert time.monotonic() < deadline, f"batch never got there: {batch}"
        time.sleep(0.02)


def settled(server: SimServer, batch_id: str) -> dict[str, Any]:
    return wait_for(
        server, batch_id, lambda b: b["status"] in ("completed", "failed", "expired", "cancelled")
    )


def content(server: SimServer, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    r = httpx.get(f"{server.base_url}/files/{file_id}/content", timeout=10.0)
    assert r.status_code == 200, r.text
    return [json.loads(x) for x in r.content.splitlines()]


def chat(server: SimServer, request: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", json=request, timeout=10.0)


def wait_metric(server: SimServer, name: str, value: float, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while server.metrics()[name] != value:
        assert time.monotonic() < deadline, f"{name} never reached {value}: {server.metrics()[name]}"
        time.sleep(0.02)


def metric_group(server: SimServer, name: str) -> dict[str, int]:
    """``{"ok": 3, ...}`` for ``name{label="ok"} 3`` samples that are not zero."""
    return {k.split('"')[1]: int(v) for k, v in server.metrics().items() if k.startswith(name + "{") and v}


# --------------------------------------------------------------------------- the happy path


def test_upload_create_poll_and_download_the_output(sim_factory) -> None:
    server = sim_factory()
    items = [line(f"q-{i}", body(i)) for i in range(5)]
    r = upload(server, jsonl(items))
    assert r.status_code == 200, r.text
    uploaded = r.json()
    assert set(uploaded) == FILE_KEYS
    assert uploaded["id"].startswith("file-") and uploaded["object"] == "file"
    assert (uploaded["purpose"], uploaded["filename"], uploaded["bytes"]) == (
        "batch",
        "in.jsonl",
        len(jsonl(items)),
    )
    assert httpx.get(f"{server.base_url}/files/{uploaded['id']}").json() == uploaded
    assert httpx.get(f"{server.base_url}/files/{uploaded['id']}/content").content == jsonl(items)

    request = {
        "input_file_id": uploaded["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"run": "nightly-7"},
    }
    created = httpx.post(server.base_url + "/batches", json=request).json()
    assert set(created) == BATCH_KEYS
    assert created["id"].startswith("batch_") and created["object"] == "batch"
    assert created["status"] == "validating" and created["metadata"] == {"run": "nightly-7"}
    assert created["expires_at"] == created["created_at"] + 86_400

    done = settled(server, created["id"])
    assert set(done) == BATCH_KEYS
    assert done["status"] == "completed" and done["errors"] is None
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert done["error_file_id"] is None
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert done[stamp] >= done["created_at"], stamp
    for stamp in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert done[stamp] is None, stamp

    output = content(server, done["output_file_id"])
    assert [x["custom_id"] for x in output] == [f"q-{i}" for i in range(5)]  # input order
    for x in output:
        assert set(x) == {"id", "custom_id", "response", "error"} and x["error"] is None
        assert x["id"].startswith("batch_req_")
        assert set(x["response"]) == {"status_code", "request_id", "body"}
        assert x["response"]["status_code"] == 200 and x["response"]["request_id"].startswith("req_")
        completion = x["response"]["body"]
        assert completion["object"] == "chat.completion" and completion["model"] == MODEL
        assert completion["choices"][0]["message"]["content"].startswith("(simulated)")
    meta = httpx.get(f"{server.base_url}/files/{done['output_file_id']}").json()
    assert meta["purpose"] == "batch_output" and meta["filename"] == f"{done['id']}_output.jsonl"


def test_a_batch_line_gets_what_the_interactive_route_answers(sim_factory) -> None:
    """Same bodies, same path: the seeded completion, a targeted truncation and a targeted 400 alike."""
    server = sim_factory(targeted_faults=("*:CUTME=truncate", "*:POISON=400"))
    bodies = {"plain": body(11), "n3": body(12, n=3), "cut": body(13, "CUTME"), "refused": body(14, "POISON")}
    interactive = {k: chat(server, b) for k, b in bodies.items()}
    assert interactive["refused"].status_code == 400
    assert interactive["cut"].json()["choices"][0]["finish_reason"] == "length"

    batch = settled(server, create(server, [line(k, b) for k, b in bodies.items()])["id"])
    assert batch["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    results = {x["custom_id"]: x for x in content(server, batch["output_file_id"])}
    results |= {x["custom_id"]: x for x in content(server, batch["error_file_id"])}
    for key, reply in interactive.items():
        got = results[key]["response"]
        assert got["status_code"] == reply.status_code, key
        want = reply.json()
        if reply.status_code == 200:  # everything but the completion's own id and time
            for field in ("id", "created"):
                del got["body"][field], want[field]
            # and the prefix cache's share: the batch line asks a question the interactive route asked
            # before, so (as in vLLM) more of its prompt is cached, never less
            cached = got["body"]["usage"].pop("prompt_tokens_details")["cached_tokens"]
            assert cached >= want["usage"].pop("prompt_tokens_details")["cached_tokens"], key
        assert got["body"] == want, key
    assert len(results["n3"]["response"]["body"]["choices"]) == 3


def test_faults_that_end_a_connection_fail_a_batch_line_with_500(sim_factory) -> None:
    rules = ("*:DROPME=drop", "*:HANGME=hang", "*:BADJSON=malformed", "*:SLOWDOWN=429", "*:OOPS=500")
    server = sim_factory(targeted_faults=rules, hang_seconds=3600.0)
    markers = {"drop": "DROPME", "hang": "HANGME", "malformed": "BADJSON", "429": "SLOWDOWN", "500": "OOPS"}
    items = [line(kind, body(i, marker)) for i, (kind, marker) in enumerate(markers.items())]
    batch = settled(server, create(server, [*items, line("fine", body(99))])["id"])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 6, "completed": 1, "failed": 5}
    errors = {x["custom_id"]: x for x in content(server, batch["error_file_id"])}
    codes = {k: x["response"]["status_code"] for k, x in errors.items()}
    assert codes == {"drop": 500, "hang": 500, "malformed": 500, "429": 429, "500": 500}
    for x in errors.values():
        assert x["error"] is None and x["response"]["body"]["error"]["code"] == x["response"]["status_code"]
    assert [x["custom_id"] for x in content(server, batch["output_file_id"])] == ["fine"]
    assert metric_group(server, "batch_lines_total") == {
        "ok": 1,
        "drop": 1,
        "hang": 1,
        "malformed": 1,
        "429": 1,
        "500": 1,
    }
    assert metric_group(server, "requests_total") == {}


def test_the_in_progress_state_lasts_the_batch_delay(sim_factory) -> None:
    server = sim_factory(batch_delay_s=1.0)
    batch_id = create(server, [line(f"q-{i}", body(i)) for i in range(3)])["id"]
    running = wait_for(server, batch_id, lambda b: b["status"] != "validating")
    assert running["status"] == "in_progress" and running["in_progress_at"] is not None
    assert running["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    assert running["output_file_id"] is None and running["completed_at"] is None
    done = settled(server, batch_id)
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 3


# --------------------------------------------------------------------------- validation


def test_an_invalid_input_file_fails_the_batch_with_line_errors(sim_factory) -> None:
    server = sim_factory()
    good = [line("a", body(1)), line("b", body(2))]
    raw = jsonl([*good, line("a", body(3)), line("c", body(4), url="/v1/completions")])
    raw += b"{not json\n\n" + jsonl([{"custom_id": "d", "method": "POST", "url": "/v1/chat/completions"}])
    r = upload(server, raw)
    assert r.status_code == 200, r.text  # its first line is JSONL: lines are checked when a batch runs
    request = {
        "input_file_id": r.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batch = settled(server, httpx.post(server.base_url + "/batches", json=request).json()["id"])
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    assert batch["output_file_id"] is None and batch["error_file_id"] is None
    assert batch["in_progress_at"] is None
    assert batch["errors"]["object"] == "list"
    found = [(e["code"], e["line"]) for e in batch["errors"]["data"]]
    assert found == [
        ("duplicate_custom_id", 3),
        ("url_mismatch", 4),
        ("invalid_json_line", 5),
        ("missing_required_parameter", 7),  # line 6 is blank: skipped, still counted
    ]
    assert all(set(e) == {"code", "message", "param", "line"} for e in batch["errors"]["data"])
    assert metric_group(server, "batch_lines_total") == {}  # nothing ran


def test_more_lines_than_the_limit_fail_the_batch(sim_factory) -> None:
    server = sim_factory(batch_max_requests=3)
    ok = settled(server, create(server, [line(f"q-{i}", body(i)) for i in range(3)])["id"])
    assert ok["status"] == "completed"
    over = settled(server, create(server, [line(f"q-{i}", body(i)) for i in range(4)])["id"])
    assert over["status"] == "failed"
    assert [(e["code"], e["line"]) for e in over["errors"]["data"]] == [("too_many_tasks", None)]


def test_bad_uploads_and_bad_batch_requests_are_refused(sim_factory) -> None:
    server = sim_factory(batch_max_bytes=2_000)
    small = jsonl([line("q-0", body(0))])
    assert len(small) < 2_000 and upload(server, small).status_code == 200
    big = jsonl([line(f"q-{i}", body(i)) for i in range(4)])
    assert 2_000 < len(big) < 64 * 1024
    refused = upload(server, big)
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "limit is 2000" in refused.json()["error"]["message"]
    assert upload(server, b"custom_id,body\nq-1,hello\n").status_code == 400  # not JSONL
    assert upload(server, b"").status_code == 400
    assert upload(server, b"\xff\xfe{}\n").status_code == 400
    assert upload(server, small, purpose="fine-tune").status_code == 400
    listed = httpx.get(server.base_url + "/files").json()
    assert len(listed["data"]) == 1 and server.metrics()["files_uploaded_total"] == 1

    file_id = listed["data"][0]["id"]
    request = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    post = lambda payload: httpx.post(server.base_url + "/batches", json=payload)  # noqa: E731
    assert post({**request, "input_file_id": "file-nope"}).status_code == 404
    assert post({**request, "completion_window": "1h"}).status_code == 400
    assert post({**request, "endpoint": "/v1/embeddings"}).status_code == 400
    assert post({**request, "metadata": {"k": 1}}).status_code == 400
    assert post(request).status_code == 200


def test_unknown_ids_are_404_and_wrong_methods_405(sim_factory) -> None:
    server = sim_factory()
    for path in ("/batches/batch_nope", "/files/file-nope", "/files/file-nope/content"):
        r = httpx.get(server.base_url + path)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", path
    assert httpx.post(server.base_url + "/batches/batch_nope/cancel").status_code == 404
    assert httpx.delete(server.base_url + "/batches").status_code == 405
    assert httpx.get(server.base_url + "/batches/batch_nope/cancel").status_code == 405
    assert httpx.put(server.base_url + "/files").status_code == 405
    assert httpx.post(server.root_url + "/admin/batches", json={"expire": "batch_nope"}).status_code == 404


# --------------------------------------------------------------------------- failed lines


def expected_failures(seed: int, custom_ids: list[str], rate: float) -> set[str]:
    """The documented rule, written out here: sha256("SEED|CUSTOM_ID"), first 8 bytes big-endian / 2**64."""
    chosen = set()
    for custom_id in custom_ids:
        digest = hashlib.sha256(f"{seed}|{custom_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < rate:
            chosen.add(custom_id)
    return chosen


def test_the_line_failure_rate_fails_a_reproducible_set_of_lines(sim_factory) -> None:
    seed, rate = 7, 0.3
    ids = [f"row-{i}" for i in range(40)]
    expected = expected_failures(seed, ids, rate)
    assert 0 < len(expected) < len(ids)
    for _ in range(2):  # the same set from a fresh server, whatever the order lines run in
        server = sim_factory(fault_seed=seed, batch_line_failure_rate=rate, batch_concurrency=7)
        batch = settled(server, create(server, [line(c, body(i)) for i, c in enumerate(ids)])["id"])
        assert batch["status"] == "completed"
        assert batch["request_counts"] == {
            "total": 40,
            "completed": 40 - len(expected),
            "failed": len(expected),
        }
        errors = content(server, batch["error_file_id"])
        assert {x["custom_id"] for x in errors} == expected
        assert {x["response"]["status_code"] for x in errors} == {500}
        assert {x["custom_id"] for x in content(server, batch["output_file_id"])} == set(ids) - expected
        assert metric_group(server, "batch_lines_total") == {
            "ok": 40 - len(expected),
            "line_failure": len(expected),
        }
        server.stop()


# --------------------------------------------------------------------------- expiry and cancellation


def test_expiring_a_paused_batch_writes_its_unfinished_lines_as_batch_expired(sim_factory) -> None:
    """Paused engine: the valid lines wait; invalid bodies are answered before the engine (400)."""
    server = sim_factory()
    server.pause()
    items = [line(f"q-{i}", body(i)) for i in range(4)]
    items.insert(2, line("bad", body(5, temperature=5.0)))
    batch_id = create(server, items)["id"]
    wait_for(server, batch_id, lambda b: b["request_counts"]["failed"] == 1)
    wait_metric(server, "batch_lines_in_flight", 4)  # held by the pause
    assert server.expire_batches(batch_id) == [batch_id]
    batch = get_batch(server, batch_id)  # expired by the time the admin call returns
    assert batch["status"] == "expired" and batch["expired_at"] is not None
    assert batch["output_file_id"] is None
    assert batch["request_counts"] == {"total": 5, "completed": 0, "failed": 5}
    errors = content(server, batch["error_file_id"])
    assert [x["custom_id"] for x in errors] == ["q-0", "q-1", "bad", "q-2", "q-3"]
    assert errors[2]["response"]["status_code"] == 400 and errors[2]["error"] is None
    for x in errors[:2] + errors[3:]:
        assert x == {"id": x["id"], "custom_id": x["custom_id"], "response": None, "error": EXPIRED_ERROR}
    m = server.metrics()
    assert m["batch_lines_expired_total"] == 4 and m["batch_lines_in_flight"] == 0
    assert m['batches_total{status="expired"}'] == 1
    server.pause(False)
    time.sleep(0.2)
    assert metric_group(server, "batch_lines_total") == {"invalid": 1}  # the held lines never ran


def test_an_expired_batch_keeps_the_lines_it_finished(sim_factory) -> None:
    server = sim_factory(base_latency_ms=100.0, batch_concurrency=1)
    ids = [f"q-{i}" for i in range(40)]  # 4 s of work, one line at a time
    batch_id = create(server, [line(c, body(i)) for i, c in enumerate(ids)])["id"]
    wait_for(server, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
    server.pause()
    assert server.expire_batches() == [batch_id]
    batch = get_batch(server, batch_id)
    done = [x["custom_id"] for x in content(server, batch["output_file_id"])]
    expired = content(server, batch["error_file_id"])
    assert len(done) >= 2 and expired, "some lines finished, the rest expired"
    assert done + [x["custom_id"] for x in expired] == ids  # each line once, in input order
    assert all(x["error"] == EXPIRED_ERROR and x["response"] is None for x in expired)
    assert batch["request_counts"] == {"total": 40, "completed": len(done), "failed": len(expired)}
    assert server.expire_batches() == []  # nothing open any more
    assert httpx.post(server.root_url + "/admin/batches", json={"expire": batch_id}).status_code == 409


def test_a_batch_expires_when_its_window_ends(sim_factory) -> None:
    server = sim_factory(batch_window_s=0.5)
    server.pause()
    created = create(server, [line("q-0", body(0))])
    assert created["expires_at"] in (created["created_at"], created["created_at"] + 1)
    batch = settled(server, created["id"])
    assert batch["status"] == "expired"
    assert [x["error"]["code"] for x in content(server, batch["error_file_id"])] == ["batch_expired"]


def test_cancelling_stops_the_lines_not_yet_done(sim_factory) -> None:
    server = sim_factory()
    server.pause()
    items = [line("bad", body(0, temperature=5.0)), *(line(f"q-{i}", body(i)) for i in range(1, 4))]
    batch_id = create(server, items)["id"]
    wait_for(server, batch_id, lambda b: b["request_counts"]["failed"] == 1)
    r = httpx.post(f"{server.base_url}/batches/{batch_id}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelling" and r.json()["cancelling_at"] is not None
    batch = settled(server, batch_id)
    assert batch["status"] == "cancelled" and batch["cancelled_at"] is not None
    assert batch["output_file_id"] is None
    assert [x["custom_id"] for x in content(server, batch["error_file_id"])] == ["bad"]  # the one done
    assert batch["request_counts"] == {"total": 4, "completed": 0, "failed": 1}
    server.pause(False)
    time.sleep(0.2)
    assert metric_group(server, "batch_lines_total") == {"invalid": 1}  # the others never ran
    assert server.metrics()["batch_lines_in_flight"] == 0
    assert httpx.post(f"{server.base_url}/batches/{batch_id}/cancel").status_code == 409


# --------------------------------------------------------------------------- listing and metrics


def test_batches_are_listed_newest_first_a_page_at_a_time(sim_factory) -> None:
    server = sim_factory()
    ids = [create(server, [line("q", body(i))])["id"] for i in range(3)]
    newest = ids[::-1]
    page = httpx.get(server.base_url + "/batches", params={"limit": 2}).json()
    assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}
    assert page["object"] == "list" and page["has_more"] is True
    assert [b["id"] for b in page["data"]] == newest[:2]
    assert (page["first_id"], page["last_id"]) == (newest[0], newest[1])
    rest = httpx.get(server.base_url + "/batches", params={"limit": 2, "after": page["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == newest[2:] and rest["has_more"] is False
    assert rest["first_id"] == rest["last_id"] == newest[2]
    everything = httpx.get(server.base_url + "/batches").json()
    assert [b["id"] for b in everything["data"]] == newest and everything["has_more"] is False
    assert all(set(b) == BATCH_KEYS for b in everything["data"])
    assert httpx.get(server.base_url + "/batches", params={"limit": 0}).status_code == 400


def test_metrics_count_interactive_requests_and_batch_lines_apart(sim_factory) -> None:
    server = sim_factory()
    for i in range(2):
        assert chat(server, body(100 + i)).status_code == 200
    batch = settled(server, create(server, [line(f"q-{i}", body(i)) for i in range(5)])["id"])
    assert batch["status"] == "completed"
    m = server.metrics()
    assert metric_group(server, "requests_total") == {"ok": 2}
    assert metric_group(server, "requests_by_role_total") == {"generate": 2}
    assert metric_group(server, "batch_lines_total") == {"ok": 5}
    assert metric_group(server, "batch_lines_by_role_total") == {"generate": 5}
    assert metric_group(server, "batch_lines_by_model_total") == {MODEL: 5}
    assert metric_group(server, "batches_total") == {
        "validating": 1,
        "in_progress": 1,
        "finalizing": 1,
        "completed": 1,
    }
    assert m["files_uploaded_total"] == 1 and m["batches_created_total"] == 1
    assert m["batch_completion_tokens_total"] > 0 and m["batch_prompt_tokens_total"] > 0
    assert m["in_flight_peak"] == 1  # the interactive gauge never saw the batch's lines
    text = httpx.get(server.root_url + "/metrics").text
    assert 'reasonmed_sim_batch_lines_total{outcome="ok"} 5' in text
    assert "# TYPE reasonmed_sim_batches_total counter" in text
    server.reset_metrics()
    assert metric_group(server, "batch_lines_total") == {} and server.metrics()["files_uploaded_total"] == 0


def test_the_openai_sdk_drives_the_batch_api(sim_factory, tmp_path) -> None:
    openai = pytest.importorskip("openai")
    server = sim_factory()
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-simulated", max_retries=0)
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl([line(f"q-{i}", body(i)) for i in range(3)]))
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 8.0
    while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.02)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.completed == 3
    assert batch.output_file_id is not None
    lines = client.files.content(batch.output_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in lines) == ["q-0", "q-1", "q-2"]
    assert [b.id for b in client.batches.list(limit=1)] == [batch.id]


def test_batch_lines_are_not_rate_limited(sim_factory) -> None:
    """A hosted API's per-minute limits are for interactive requests: a batch runs past them."""
    server = sim_factory(rate_limit_rpm=60.0, rate_limit_window_s=1.0)  # one request in any second
    assert chat(server, body(0)).status_code == 200
    assert chat(server, body(1)).status_code == 429
    batch = settled(server, create(server, [line(f"q-{i}", body(i)) for i in range(10)])["id"])
    assert batch["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    assert metric_group(server, "requests_total") == {"ok": 1, "limited": 1}
    assert metric_group(server, "batch_lines_total") == {"ok": 10}


def test_a_delay_set_through_the_admin_route_holds_only_the_batches_created_after_it(sim_factory) -> None:
    server = sim_factory()  # batches start at once
    first = create(server, [line("q-0", body(0))])["id"]
    wait_for(server, first, lambda b: b["status"] == "completed")
    server.set_batch_delay(3600)
    held = create(server, [line("q-1", body(1))])["id"]
    wait_for(server, held, lambda b: b["status"] == "in_progress")
    time.sleep(0.5)
    assert get_batch(server, held)["request_counts"]["completed"] == 0  # waiting out its hour
    server.set_batch_delay(0)
    after = create(server, [line("q-2", body(2))])["id"]
    wait_for(server, after, lambda b: b["status"] == "completed")
    assert get_batch(server, held)["status"] == "in_progress"  # its own delay still holds it
    assert server.expire_batches() == [held]
    for wrong in (-1, "soon", True):
        r = httpx.post(server.root_url + "/admin/batches", json={"delay_s": wrong})
        assert r.status_code == 400 and "delay_s" in r.json()["error"]["message"], wrong
