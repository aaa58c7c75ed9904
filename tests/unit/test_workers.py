"""Which holders of claims and cap shares are provably dead: a process of this host that is gone."""

from __future__ import annotations

import socket
import subprocess

import psutil

from reasonmed.pipeline.workers import cap_holder, provably_dead, worker_id


def test_this_process_is_alive_under_either_name() -> None:
    assert not provably_dead(worker_id(7))
    assert not provably_dead(cap_holder())
    assert cap_holder() != cap_holder()  # two registries of one process hold apart


def test_an_exited_process_of_this_host_is_dead_and_others_are_not_known_to_be() -> None:
    proc = subprocess.Popen(["true"])
    start = int(psutil.Process(proc.pid).create_time())
    proc.wait()
    host = socket.gethostname()
    assert provably_dead(f"{host}:{proc.pid}:{start}:run3")
    assert provably_dead(f"{host}:{proc.pid}:{start}:caps-0a1b2c3d")
    assert not provably_dead(f"elsewhere:{proc.pid}:{start}:run3")  # another host: cannot tell
    assert not provably_dead(f"{host}:{proc.pid}:{start}:other")  # an id of another shape
    assert not provably_dead("a-worker-named-by-hand")
