"""Batched writes lose nothing when the process dies between a flush and the next.

A child process hands the writer two rounds of writes: the first round's callers are told it committed;
the second round is queued and the process kills itself (SIGKILL, no clean-up) before the writer can
flush it. What the first round's callers were told is in the database, nothing of the second round is
(no half-written batch), and writing both rounds again, as a resumed run does, leaves each row once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from sqlalchemy import create_engine, text

# argv: database URL, then "kill" (two rounds, killed before the second is flushed) or "replay" (both rounds).
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from sqlalchemy import create_engine, text
    from reasonmed.db.write_behind import WriteBehind

    engine = create_engine(sys.argv[1])

    def put(k):
        def write(s):
            s.execute(text("insert into wb (k) values (:k) on conflict (k) do nothing"), {"k": k})
            return k
        return write

    async def kill():
        w = WriteBehind(engine, max_batch=8)
        acked = await asyncio.gather(*(w.write(k, put(k)) for k in range(40)))   # round 1: committed
        print("acked", len(acked), w.stats.flushes, flush=True)
        for k in range(40, 80):                                                   # round 2: queued only
            asyncio.ensure_future(w.write(k, put(k)))
        await asyncio.sleep(0)  # the writes are on the queue; the flusher has not had its turn
        os.kill(os.getpid(), signal.SIGKILL)

    async def replay():
        async with WriteBehind(engine, max_batch=8) as w:
            await asyncio.gather(*(w.write(k, put(k)) for k in range(80)))

    asyncio.run(kill() if sys.argv[2] == "kill" else replay())
    """
)


def test_killed_between_flushes_loses_no_committed_write_and_resumes_without_duplicates(pg_url: str) -> None:
    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("create table wb (id serial primary key, k integer not null unique)"))
    killed = subprocess.run(
        [sys.executable, "-c", CHILD, pg_url, "kill"], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    acked, n, flushes = killed.stdout.split()
    assert acked == "acked" and int(n) == 40 and int(flushes) >= 5  # round 1 went out in batches of <= 8
    with engine.connect() as c:
        assert [k for (k,) in c.execute(text("select k from wb order by k"))] == list(range(40))

    resumed = subprocess.run(
        [sys.executable, "-c", CHILD, pg_url, "replay"], capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with engine.connect() as c:
        assert [k for (k,) in c.execute(text("select k from wb order by k"))] == list(range(80))
        assert c.execute(text("select count(*) from wb")).scalar_one() == 80
    engine.dispose()
