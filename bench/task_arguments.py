"""What a task's arguments cost Prefect: CPU per task run of one NO_CACHE async task, handed

- ``key``: a short string looked up in a dict (how tasks once found their context);
- ``handle``: the stage context in a ``tasks.context.Handle`` (how they get it now);
- ``bare``: the stage context itself, a dataclass holding the whole pipeline config.

Prefect walks every task argument before each run (``visit_collection``: task inputs, futures to
resolve); a Handle is a leaf to that walk, a dataclass is not.

    PREFECT_HOME=$(mktemp -d) python bench/task_arguments.py 1000

Measured on a shared 2-core machine, temporary Prefect server, 1,000 tasks per kind, 100 at a time:
key 3.0-3.4 ms, handle 3.2 ms, bare 5.3 ms CPU per task run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from reasonmed.config import load_pipeline_config  # noqa: E402
from reasonmed.llm.registry import LLMRegistry  # noqa: E402
from reasonmed.pipeline.context import StageContext  # noqa: E402
from reasonmed.tasks.context import Handle  # noqa: E402

OPTIONS = {"cache_policy": NO_CACHE, "persist_result": False, "task_run_name": "t q{q}"}
TABLE: dict[str, StageContext] = {}  # the old way's module registry (bench only)


@task(name="by-key", **OPTIONS)
async def by_key(key: str, q: int) -> int:
    return (TABLE[key].run_id or 0) + q


@task(name="by-handle", **OPTIONS)
async def by_handle(run: Handle[StageContext], q: int) -> int:
    return (run.value.run_id or 0) + q


@task(name="bare", **OPTIONS)
async def bare(ctx: StageContext, q: int) -> int:
    return (ctx.run_id or 0) + q


@flow(persist_result=False)
async def measure(n: int) -> dict[str, tuple[float, float]]:
    cfg = load_pipeline_config(None)
    ctx = StageContext(engine=create_engine("sqlite://"), cfg=cfg, backends=LLMRegistry(cfg), run_id=1)
    handle = Handle(ctx)
    TABLE["k"] = ctx
    kinds = {
        "key": lambda q: by_key("k", q),
        "handle": lambda q: by_handle(handle, q),
        "bare": lambda q: bare(ctx, q),
    }
    out: dict[str, tuple[float, float]] = {}
    for name, call in [*kinds.items(), ("key", kinds["key"]), ("handle", kinds["handle"])]:
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, n, 100):
            await asyncio.gather(*(call(q) for q in range(start, start + 100)))
        out[name if name not in out else f"{name} again"] = (
            1e3 * (time.process_time() - cpu) / n,
            1e3 * (time.perf_counter() - wall) / n,
        )
    return out


if __name__ == "__main__":
    for kind, (cpu_ms, wall_ms) in asyncio.run(
        measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    ).items():
        print(f"{kind:13s} CPU {cpu_ms:.2f} ms per task run, wall {wall_ms:.2f} ms")
