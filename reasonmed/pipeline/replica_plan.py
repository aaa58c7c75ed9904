"""How many replicas each endpoint needs so that every role finishes together (``run --dry-run --nodes N``).

A run is as long as its busiest endpoint: with the paper's roles the verifier's model does about 20 of a
question's 26 calls, so one replica per model leaves the generators idle most of the night. The work of an
endpoint is its engine time in the run's estimate (``pipeline/estimate.py``): calls x mean latency from the
stored history, or, without stored latencies, its completion tokens (decoding dominates a call's engine
time). The replica slots (nodes x replicas per node) are handed out one at a time to the endpoint whose work
per replica is largest, starting from one each; that greedy choice gives the smallest possible largest
work per replica, i.e. the shortest run, and the finish times it prints show how even the roles end.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from reasonmed.mistake import Mistake
from reasonmed.pipeline.estimate import RunEstimate


@dataclass(frozen=True, slots=True)
class EndpointShare:
    endpoint: str
    model: str
    work: float  # engine-seconds, or completion tokens (see ReplicaPlan.basis)
    replicas: int

    @property
    def per_replica(self) -> float:
        return self.work / self.replicas


@dataclass(frozen=True)
class ReplicaPlan:
    nodes: int
    replicas_per_node: int
    basis: Literal["engine-seconds", "completion tokens"]
    endpoints: list[EndpointShare] = field(default_factory=list)

    def finish(self, share: EndpointShare) -> float:
        """When the endpoint's work ends, as a share of the run (1.0: the endpoint that sets the pace)."""
        longest = max((e.per_replica for e in self.endpoints), default=0.0)
        return share.per_replica / longest if longest else 0.0


def plan_replicas(
    est: RunEstimate, *, nodes: int, replicas_per_node: int = 2, hosted: Collection[str] = ()
) -> ReplicaPlan:
    """Replicas per endpoint for ``nodes`` nodes of ``replicas_per_node`` replicas each (two tensor-parallel-4
    replicas of a 70B-class model on an 8-GPU node). ``hosted``: endpoints the nodes do not serve (a hosted
    API such as the paper's refiner), left out."""
    if nodes < 1 or replicas_per_node < 1:
        raise Mistake("--nodes and --replicas-per-node must be at least 1")
    endpoints = {s.endpoint for s in est.stages}
    unknown = sorted(set(hosted) - endpoints)
    if unknown:
        raise Mistake(
            f"--hosted {', '.join(unknown)}: no such endpoint in the pipeline file "
            f"(endpoints: {', '.join(sorted(endpoints))})"
        )
    timed = all(s.busy_s is not None for s in est.stages if s.calls)
    work: dict[str, float] = {}
    models: dict[str, str] = {}
    for s in est.stages:
        if s.endpoint in hosted:
            continue
        work[s.endpoint] = work.get(s.endpoint, 0.0) + ((s.busy_s or 0.0) if timed else s.completion_tokens)
        models[s.endpoint] = s.model
    busy = {e: w for e, w in work.items() if w > 0}
    if not busy:
        raise Mistake("no endpoint the nodes serve has work to plan replicas for")
    slots = nodes * replicas_per_node
    if len(busy) > slots:
        raise Mistake(
            f"{len(busy)} endpoints have work but {nodes} node(s) x {replicas_per_node} hold {slots} replica(s): "
            "give more --nodes or endpoints that share a server"
        )
    replicas = dict.fromkeys(busy, 1)
    for _ in range(slots - len(busy)):
        busiest = max(busy, key=lambda e: (busy[e] / replicas[e], e))
        replicas[busiest] += 1
    return ReplicaPlan(
        nodes=nodes,
        replicas_per_node=replicas_per_node,
        basis="engine-seconds" if timed else "completion tokens",
        endpoints=[EndpointShare(e, models[e], busy[e], replicas[e]) for e in sorted(busy)],
    )
