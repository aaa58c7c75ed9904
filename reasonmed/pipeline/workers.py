"""Who holds a claim, and whether that holder is provably dead.

A worker id names the process that claims questions: ``host:pid:start:run<N>``, where ``start`` is the
process's start time (seconds since the epoch). A claim whose holder ran on this host and whose process
is gone (no such pid, or a pid reused by a process that started at another time) is dead for certain:
a rerun right after a SIGKILL takes those questions back at once instead of waiting out the lease.
Any other holder (another host, an id of another shape) is alive as far as anyone here can tell.
"""

from __future__ import annotations

import os
import socket
import uuid

import psutil


def _process() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{int(me.create_time())}"


def worker_id(run_id: int) -> str:
    return f"{_process()}:run{run_id}"


def cap_holder() -> str:
    """``host:pid:start:caps-<token>``: what holds a registry's shares of the endpoints' caps
    (llm/shared_caps.py); the token tells two registries of one process apart."""
    return f"{_process()}:caps-{uuid.uuid4().hex[:8]}"


def provably_dead(worker: str, host: str | None = None) -> bool:
    """Whether ``worker`` (a ``worker_id`` or a ``cap_holder``) names a process of this host that is gone."""
    parts = worker.split(":")
    if (
        len(parts) != 4
        or parts[0] != (host or socket.gethostname())
        or not parts[3].startswith(("run", "caps-"))
    ):
        return False
    try:
        pid, start = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return abs(int(proc.create_time()) - start) > 1  # the pid now belongs to another process
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False
