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


def test_fork_bomb_is_stopped_by_the_pids_limit(runtime):
    async def body():
        sb = runtime.sandbox_config(resources=Resources(pids_limit=64))
        await runtime.rt.create_sandbox(sb)
        cfg = runtime.container_config(sb.pod_id, ("sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 60"))
        await runtime.rt.start(cfg)
        samples = []
        for _ in range(20):
            await asyncio.sleep(0.1)
            samples.append((await runtime.rt.stats(cfg.id)).pids)
        await runtime.rt.stop(cfg.id, 0)
        return samples, await runtime.rt.status(cfg.id)
    samples, st = asyncio.run(body())
    # The bomb filled the pod's pids budget and never went beyond it.
    assert max(samples) <= 64
    assert max(samples) >= 48, samples
    assert st.state is State.EXITED
