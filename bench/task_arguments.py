"""CPU per task run: the same NO_CACHE async task handed (a) a string key looked up in a module dict
(the old way), (b) the stage context in a Handle (the new way), (c) the bare StageContext dataclass."""
import asyncio, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import create_engine
from reasonmed.config import load_pipeline_config
from reasonmed.llm.registry import LLMRegistry
from reasonmed.pipeline.stages import StageContext
from tasks.context import Handle

cfg = load_pipeline_config(None)
CTX = StageContext(engine=create_engine("sqlite://"), cfg=cfg, backends=LLMRegistry(cfg), run_id=1)
REG = {"k": CTX}

@task(name="t-key", task_run_name="t q{q}", cache_policy=NO_CACHE, persist_result=False)
async def t_key(key: str, q: int) -> int:
    return REG[key].run_id + q

@task(name="t-handle", task_run_name="t q{q}", cache_policy=NO_CACHE, persist_result=False)
async def t_handle(run: Handle[StageContext], q: int) -> int:
    return run.value.run_id + q

@task(name="t-bare", task_run_name="t q{q}", cache_policy=NO_CACHE, persist_result=False)
async def t_bare(ctx: StageContext, q: int) -> int:
    return ctx.run_id + q

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500

@flow(persist_result=False)
async def main() -> dict:
    out = {}
    h = Handle(CTX)
    for name, call in [("key", lambda q: t_key("k", q)), ("handle", lambda q: t_handle(h, q)), ("bare", lambda q: t_bare(CTX, q)),
                       ("key2", lambda q: t_key("k", q)), ("handle2", lambda q: t_handle(h, q))]:
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(0, N, 100):
            await asyncio.gather(*(call(q) for q in range(i, i + 100)))
        out[name] = (1e3 * (time.process_time() - c0) / N, 1e3 * (time.perf_counter() - w0) / N)
    return out

for k, (cpu, wall) in asyncio.run(main()).items():
    print(f"{k:8s} CPU {cpu:.2f} ms/task, wall {wall:.2f} ms/task")
