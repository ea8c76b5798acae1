"""The runtime's health check (the node's heartbeat asks it each period) does not queue behind
the pod starts the zygote is serving: with 100 pods arriving at once it waited more than the
node's 8 s grace, and the node was marked unreachable and every pod evicted."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

from agent.runtime.linux.zygote import Zygote


def _zygote(tmp_path, pid: int) -> tuple[Zygote, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Zygote(sock=ours, pid=pid, path=tmp_path / "zygote.sock"), theirs


def test_health_answers_at_once_while_starts_are_queued(tmp_path):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zygote, theirs = _zygote(tmp_path, helper.pid)

    async def scenario():
        assert await zygote.ensure_alive() is None   # creates the lock
        async with zygote._lock:   # a sandbox or start being served, more queued behind it
            assert await asyncio.wait_for(zygote.ensure_alive(), 1) is None
    try:
        asyncio.run(scenario())
    finally:
        helper.kill()
        helper.wait()
        theirs.close()


def test_a_dead_zygote_is_not_reported_alive_while_a_request_holds_the_lock(tmp_path):
    helper = subprocess.Popen([sys.executable, "-c", "pass"])
    helper.wait()   # reaped: its pid names no process
    zygote, theirs = _zygote(tmp_path, helper.pid)

    async def scenario():
        zygote._lock, zygote._lock_loop = asyncio.Lock(), asyncio.get_running_loop()
        async with zygote._lock:
            waiting = asyncio.ensure_future(zygote.ensure_alive())
            await asyncio.sleep(0.1)
            assert not waiting.done()   # it waits its turn, to replace the zygote as before
            waiting.cancel()   # (before the lock is free: no replacement is started here)
            await asyncio.gather(waiting, return_exceptions=True)
    try:
        asyncio.run(scenario())
    finally:
        theirs.close()
