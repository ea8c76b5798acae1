"""Containment by the cgroup: a memory bomb ends OOMKilled/137 and a fork
bomb hits the pod's pids limit; the host (this test process) is unharmed."""
from __future__ import annotations

import asyncio

import pytest

from agent.runtime.interface import Resources, State

pytestmark = pytest.mark.root


def test_memory_bomb_is_oom_killed(runtime):
    # dd's 64 MiB block buffer alone is twice the limit.
    st, log, _ = asyncio.run(runtime.run(
        ("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=4"),
        resources=Resources(memory_limit_bytes=32 * 2**20)))
    assert (st.state, st.exit_code, st.reason, st.oom_killed) == (State.EXITED, 137, "OOMKilled", True)


def test_memory_within_the_limit_is_not_oom(runtime):
    st, log, _ = asyncio.run(runtime.run(
        ("dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=4"),
        resources=Resources(memory_limit_bytes=32 * 2**20)))
    assert (st.exit_code, st.reason, st.oom_killed) == (0, "Completed", False), log


class _Output:
    def __init__(self) -> None:
        self.data = b""

    async def stdout(self, data: bytes) -> None:
        self.data += data

    stderr = stdout


def test_fork_bomb_is_stopped_by_the_pids_limit(runtime):
    async def body():
        sb = runtime.sandbox_config(resources=Resources(pids_limit=64))
        await runtime.rt.create_sandbox(sb)
        cfg = runtime.container_config(sb.pod_id, ("sleep", "600"))
        await runtime.rt.start(cfg)
        # The bomb, exec'd into the container: every child stays (sleep 600),
        # so the pod fills up to its limit; the shell gives up once fork fails.
        out = _Output()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "while :; do sleep 600 & done"], output=out)
        full = (await runtime.rt.stats(cfg.id)).pids
        status = await runtime.rt.status(cfg.id)
        # Still in control: a plain exec runs once there is room again.
        await runtime.rt.stop(cfg.id, 0)
        return res, out.data.decode(), full, status
    res, out, full, status = asyncio.run(body())
    assert "can't fork" in out and res.exit_code != 0
    # The pod's budget: 64 tasks, minus the exec helper that has just exited.
    assert 60 <= full <= 64
    assert status.state is State.RUNNING
