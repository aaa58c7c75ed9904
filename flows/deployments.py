"""The deployments of ``deploy/prefect.yaml`` as Python objects, and serving them from one process.

``prefect deploy --all --prefect-file deploy/prefect.yaml`` registers them for a work pool and its
workers; a single-machine install can instead run ``reasonmed serve``, which reads the same file, so
the two never drift apart: same names, schedules, parameters and concurrency limits.

Prefect 3 has no public reader of prefect.yaml: the one ``prefect deploy`` uses is private
(``prefect.cli.deploy._config``), prints to its console and skips an invalid file rather than raising
(PrefectHQ/prefect#19503 asks for a public one). So this module reads the few fields ``serve`` needs and
builds them with Prefect's public types (``Cron``, ``Interval``, ``ConcurrencyLimitConfig``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron, Interval, Schedule

# Shipped in the package (reasonmed/deploy links to deploy/), so an installed ``reasonmed serve`` finds it.
PREFECT_FILE = Path(str(resources.files("reasonmed.deploy") / "prefect.yaml"))


def load_specs(path: Path = PREFECT_FILE) -> list[dict[str, Any]]:
    """The ``deployments`` entries of a prefect.yaml (YAML anchors resolved)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    specs = data.get("deployments") or []
    for spec in specs:
        if not spec.get("name") or not spec.get("entrypoint"):
            raise ValueError(f"{path}: every deployment needs a name and an entrypoint (got {spec!r})")
    return specs


def load_flow(entrypoint: str) -> Flow[..., Any]:
    """``reasonmed.flows.nightly.nightly_growth`` (a module path of the installed package, as every
    entrypoint of deploy/prefect.yaml is) -> the flow, wherever the process was started."""
    return load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)


def _schedules(spec: dict[str, Any]) -> list[Schedule]:
    out: list[Schedule] = []
    for s in spec.get("schedules") or []:
        active = s.get("active", True)
        if s.get("cron"):
            out.append(
                Cron(
                    s["cron"], timezone=s.get("timezone"), active=active, parameters=s.get("parameters") or {}
                )
            )
        elif s.get("interval"):
            out.append(
                Interval(
                    s["interval"],
                    timezone=s.get("timezone"),
                    active=active,
                    parameters=s.get("parameters") or {},
                )
            )
        else:
            raise ValueError(
                f"deployment {spec['name']}: only cron and interval schedules are supported here"
            )
    return out


def _concurrency(spec: dict[str, Any]) -> int | ConcurrencyLimitConfig | None:
    limit = spec.get("concurrency_limit")
    if isinstance(limit, dict):
        return ConcurrencyLimitConfig(
            limit=limit["limit"], collision_strategy=limit.get("collision_strategy", "ENQUEUE")
        )
    return limit


def runner_deployments(path: Path = PREFECT_FILE, names: list[str] | None = None) -> list[RunnerDeployment]:
    """One RunnerDeployment per entry of the file (or only those named), for ``serve``."""
    out = []
    for spec in load_specs(path):
        if names and spec["name"] not in names:
            continue
        flow = load_flow(spec["entrypoint"])
        deployment = flow.to_deployment(
            name=spec["name"],
            schedules=_schedules(spec),
            concurrency_limit=_concurrency(spec),
            parameters=spec.get("parameters") or {},
            description=spec.get("description"),
            tags=spec.get("tags"),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        assert isinstance(
            deployment, RunnerDeployment
        )  # outside an event loop Prefect returns it, not a coroutine
        out.append(deployment)
    if names and len(out) != len(names):
        known = ", ".join(s["name"] for s in load_specs(path))
        raise ValueError(f"unknown deployment name(s) in {names} (known: {known})")
    return out


def serve_all(path: Path = PREFECT_FILE, *, names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve the deployments from this process until it is stopped: runs execute as subprocesses here."""
    serve(*runner_deployments(path, names), limit=limit)
