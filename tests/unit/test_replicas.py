"""Replicated endpoints: how the pipeline file states them, and the routing rule's promises."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reasonmed.config import EndpointConfig
from reasonmed.llm.replicas import ReplicatedBackend, rendezvous_order

URLS = ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1", "http://gpu-3:8000/v1"]


def test_replicas_take_the_endpoint_settings_and_their_own_caps() -> None:
    ep = EndpointConfig(
        model="m",
        max_in_flight=64,
        timeout_s=30,
        replicas=[URLS[0], {"base_url": URLS[1], "max_in_flight": 8}],
    )
    servers = ep.replica_configs
    assert [(s.base_url, s.max_in_flight, s.timeout_s, s.replicas) for s in servers] == [
        (URLS[0], 64, 30, []),
        (URLS[1], 8, 30, []),
    ]
    assert ep.total_in_flight == 72
    single = EndpointConfig(model="m", base_url=URLS[0], max_in_flight=5)
    assert single.replica_configs == [single] and single.total_in_flight == 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"base_url": URLS[0], "replicas": URLS[1:]}, "either base_url or replicas"),
        ({"replicas": [URLS[0], URLS[0] + "/"]}, "must not repeat"),
        ({"replicas": URLS, "mode": "batch"}, "mode batch sends to one Batch API"),
        ({"replicas": ["ftp://gpu-1/v1"]}, "must start with http"),
        ({"kind": "vllm", "replicas": URLS}, "replicas apply to HTTP endpoints"),
        ({}, "base_url (or replicas) is required"),
        ({"replicas": [{"base_url": URLS[0], "max_in_flight": 0}]}, "greater than or equal to 1"),
    ],
)
def test_wrong_replica_settings_are_refused_up_front(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EndpointConfig(model="m", **fields)  # type: ignore[arg-type]


KEYS = [f"question-{i}" for i in range(3000)]


def test_rendezvous_spreads_questions_evenly() -> None:
    firsts = [rendezvous_order(k, URLS)[0] for k in KEYS]
    # 3000 keys over 3 replicas: 1000 each expected, binomial sd ~26; 150 is over 5 sd
    assert all(abs(firsts.count(i) - 1000) < 150 for i in range(3))


def test_rendezvous_is_a_permutation_and_the_same_for_a_key_wherever_computed() -> None:
    for k in KEYS[:100]:
        order = rendezvous_order(k, URLS)
        assert sorted(order) == [0, 1, 2]
        assert rendezvous_order(k, list(reversed(URLS))) == [
            2 - i for i in order
        ]  # the list's order is irrelevant


def test_removing_a_replica_moves_only_its_own_questions() -> None:
    before = {k: URLS[rendezvous_order(k, URLS)[0]] for k in KEYS}
    rest = URLS[:2]
    after = {k: rest[rendezvous_order(k, rest)[0]] for k in KEYS}
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == URLS[2]}
    # and they spread over both survivors rather than all landing on one
    landed = [after[k] for k in moved]
    assert min(landed.count(URLS[0]), landed.count(URLS[1])) > len(moved) / 4


def test_a_question_keeps_its_replica_and_moves_in_its_own_order_when_that_one_is_down() -> None:
    backend = ReplicatedBackend("gen", EndpointConfig(model="m", replicas=URLS), down={1: "unreachable"})
    for k in KEYS[:200]:
        order = [r.route_name for r in backend.order(k)]
        assert order == [URLS[i] for i in rendezvous_order(k, URLS)]
        up = next(r for r in backend.order(k) if not r.down)
        assert up.route_name == next(u for u in order if u != URLS[1])
    assert backend.breaker.trip is None  # two of three replicas serve: the endpoint is up


def test_the_endpoint_is_down_only_when_every_replica_is() -> None:
    backend = ReplicatedBackend("gen", EndpointConfig(model="m", replicas=URLS), down={0: "a", 1: "b"})
    assert backend.breaker.trip is None
    backend.replicas[2].backend.breaker.force_open("c")
    trip = backend.breaker.trip
    assert trip is not None and trip.endpoint == "gen" and "every replica is down" in trip.last_error
    with pytest.raises(Exception, match="circuit open") as info:
        backend.breaker.check()
    assert getattr(info.value, "kind", None) == "endpoint_down"
