"""The Batch API client's pure parts: request names, file splitting, result lines, and what waiting means
for a question (llm/batch.py, pipeline/failures.py)."""

from __future__ import annotations

import json

import pytest

from reasonmed.db.batch_repo import Queued
from reasonmed.llm.batch import batch_line, custom_id, read_line, split_batches, status_kind
from reasonmed.pipeline.failures import StageIncomplete, classify, sets_aside

BODY = {"model": "m", "messages": [{"role": "user", "content": "Q?"}], "temperature": 0.7, "seed": 11}


def test_a_request_keeps_its_name_across_runs_and_key_order() -> None:
    reordered = {k: BODY[k] for k in reversed(list(BODY))}
    assert custom_id("qwen", BODY) == custom_id("qwen", reordered)
    assert custom_id("qwen", BODY).startswith("rm-") and len(custom_id("qwen", BODY)) == 43


@pytest.mark.parametrize(
    "change",
    [{"seed": 12}, {"temperature": 0.9}, {"messages": [{"role": "user", "content": "Q!"}]}, {"n": 3}],
)
def test_any_change_of_the_request_changes_its_name(change: dict[str, object]) -> None:
    assert custom_id("qwen", {**BODY, **change}) != custom_id("qwen", BODY)


def test_the_endpoint_is_part_of_the_name() -> None:
    assert custom_id("qwen", BODY) != custom_id("llama", BODY)


def test_a_batch_line_is_the_apis_shape() -> None:
    line = json.loads(batch_line("rm-x", BODY))
    assert line == {"custom_id": "rm-x", "method": "POST", "url": "/v1/chat/completions", "body": BODY}


def _q(name: str, size: int) -> Queued:
    return Queued(name, 1, b"x" * size)


def test_files_are_split_by_request_count() -> None:
    queued = [_q(str(i), 10) for i in range(7)]
    files, too_large = split_batches(queued, max_requests=3, max_bytes=10_000)
    assert [[q.custom_id for q in f] for f in files] == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert too_large == []


def test_files_are_split_by_bytes_and_a_line_too_large_for_any_file_is_set_apart() -> None:
    # 40 + 40 = 80 fits 100; + 40 would be 120: a new file. 150 alone is over 100.
    queued = [_q("a", 40), _q("b", 40), _q("c", 40), _q("big", 150), _q("d", 60)]
    files, too_large = split_batches(queued, max_requests=100, max_bytes=100)
    assert [[q.custom_id for q in f] for f in files] == [["a", "b"], ["c", "d"]]
    assert [q.custom_id for q in too_large] == ["big"]


def _output_line(cid: str) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Answer: B"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 4},
    }
    return json.dumps(
        {"id": "batch_req_1", "custom_id": cid, "response": {"status_code": 200, "body": body}, "error": None}
    ).encode()


def test_an_output_line_keeps_the_response_body_and_its_tokens() -> None:
    result = read_line(_output_line("rm-1"))
    assert result is not None and result.ok and result.custom_id == "rm-1"
    assert json.loads(result.response or "")["choices"][0]["message"]["content"] == "Answer: B"
    assert (result.prompt_tokens, result.completion_tokens) == (31, 4)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "server_error"), (429, "rate_limited"), (400, "client_error"), (401, "endpoint_refused")],
)
def test_an_error_line_fails_as_the_interactive_client_would_classify_its_status(
    status: int, kind: str
) -> None:
    line = json.dumps(
        {
            "id": "batch_req_2",
            "custom_id": "rm-2",
            "response": {"status_code": status, "body": {"error": {"message": "no luck"}}},
            "error": None,
        }
    ).encode()
    result = read_line(line)
    assert result is not None and not result.ok
    assert result.error_kind == kind and "no luck" in (result.error or "")
    assert status_kind(status) == kind


def test_an_expired_request_is_a_timeout() -> None:
    line = json.dumps(
        {
            "id": "batch_req_3",
            "custom_id": "rm-3",
            "response": None,
            "error": {"code": "batch_expired", "message": "not executed before the window expired"},
        }
    ).encode()
    result = read_line(line)
    assert result is not None and (result.ok, result.error_kind) == (False, "timeout")


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"response": {"status_code": 200}}'])
def test_a_line_without_a_custom_id_is_skipped(raw: bytes) -> None:
    assert read_line(raw) is None


def test_a_stage_that_only_waits_on_batches_spends_no_attempt() -> None:
    failure = classify(
        "summarize", StageIncomplete("waiting", error_kinds=["batch_pending", "batch_pending"])
    )
    assert (failure.cls, failure.kind, failure.counts) == ("waiting", "batch_pending", False)
    assert not sets_aside(failure, failures_so_far=99, budget=3)


def test_a_real_failure_beside_a_wait_counts_as_that_failure() -> None:
    failure = classify("resolve", StageIncomplete("mixed", error_kinds=["batch_pending", "timeout"]))
    assert (failure.cls, failure.kind, failure.counts) == ("transient", "timeout", True)
    failure = classify("resolve", StageIncomplete("mixed", error_kinds=["batch_pending", "client_error"]))
    assert (failure.cls, failure.kind) == ("permanent", "client_error")
