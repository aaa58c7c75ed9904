"""Replicas per endpoint so every role finishes together: worked by hand on small estimates."""

from __future__ import annotations

import pytest

from reasonmed.mistake import Mistake
from reasonmed.pipeline.estimate import RunEstimate, StageEstimate
from reasonmed.pipeline.replica_plan import plan_replicas


def _stage(role: str, endpoint: str, busy_s: float | None, completion: int = 0) -> StageEstimate:
    return StageEstimate(role, endpoint, f"m-{endpoint}", "history", 1.0, 10, 0, completion, busy_s, None)


PAPER_LIKE = RunEstimate(
    pending=100,
    finished_history=50,
    stages=[
        _stage("generator", "gen-a", 100.0),
        _stage("generator", "gen-b", 100.0),
        _stage("generator", "gen-c", 100.0),
        _stage("verifier", "qwen", 400.0),  # the verifier's endpoint also ranks and summarises
        _stage("ranker", "qwen", 50.0),
        _stage("summarizer", "qwen", 150.0),
    ],
)


def test_the_busiest_endpoint_gets_the_replicas_until_the_roles_end_together() -> None:
    plan = plan_replicas(PAPER_LIKE, nodes=5, replicas_per_node=2)
    # 10 slots, one each first; qwen (600 s) then takes them while its work per replica is the largest:
    # 600 -> 300 -> 200 -> 150 -> 120 -> 100 (6 replicas), and the last slot at the tie (100 each) too.
    assert {e.endpoint: e.replicas for e in plan.endpoints} == {"gen-a": 1, "gen-b": 1, "gen-c": 1, "qwen": 7}
    assert plan.basis == "engine-seconds"
    finish = {e.endpoint: round(plan.finish(e), 3) for e in plan.endpoints}
    assert finish == {"gen-a": 1.0, "gen-b": 1.0, "gen-c": 1.0, "qwen": round(600 / 7 / 100, 3)}


def test_without_stored_latencies_completion_tokens_are_the_work() -> None:
    est = RunEstimate(
        pending=10,
        finished_history=0,
        stages=[_stage("generator", "gen", None, 9000), _stage("verifier", "ver", None, 3000)],
    )
    plan = plan_replicas(est, nodes=2, replicas_per_node=2)
    # 4 slots: gen 9000 -> 4500 -> 3000 (3 replicas); ver keeps 1 (3000)
    assert {e.endpoint: e.replicas for e in plan.endpoints} == {"gen": 3, "ver": 1}
    assert plan.basis == "completion tokens"


def test_an_endpoint_without_work_gets_no_replica_and_too_few_slots_is_refused() -> None:
    est = RunEstimate(
        pending=10,
        finished_history=5,
        stages=[_stage("generator", "gen", 10.0), _stage("regenerator", "idle", 0.0)],
    )
    assert [e.endpoint for e in plan_replicas(est, nodes=1, replicas_per_node=1).endpoints] == ["gen"]
    with pytest.raises(Mistake, match="4 endpoints have work but 1 node"):
        plan_replicas(PAPER_LIKE, nodes=1, replicas_per_node=2)


def test_a_hosted_endpoint_is_left_out_and_a_misspelt_one_refused() -> None:
    with_refiner = RunEstimate(
        pending=100, finished_history=50, stages=[*PAPER_LIKE.stages, _stage("refiner", "gpt", 900.0)]
    )
    # Served by the nodes, the refiner's 900 s takes slots too: one each, then gpt 900 -> 2, qwen 600 -> 2,
    # gpt 450 -> 3, the tie at 300 to qwen (the larger name) -> 3, gpt 300 -> 4.
    served = plan_replicas(with_refiner, nodes=5, replicas_per_node=2)
    assert {e.endpoint: e.replicas for e in served.endpoints} == {
        "gen-a": 1,
        "gen-b": 1,
        "gen-c": 1,
        "gpt": 4,
        "qwen": 3,
    }
    # Left out as hosted, the plan is the one above, slot for slot.
    plan = plan_replicas(with_refiner, nodes=5, replicas_per_node=2, hosted=["gpt"])
    assert {e.endpoint: e.replicas for e in plan.endpoints} == {"gen-a": 1, "gen-b": 1, "gen-c": 1, "qwen": 7}
    with pytest.raises(Mistake, match="--hosted gtp: no such endpoint .*gen-a, gen-b, gen-c, gpt, qwen"):
        plan_replicas(with_refiner, nodes=5, hosted=["gtp"])
    with pytest.raises(Mistake, match="no endpoint the nodes serve has work"):
        plan_replicas(with_refiner, nodes=5, hosted=["gen-a", "gen-b", "gen-c", "gpt", "qwen"])
