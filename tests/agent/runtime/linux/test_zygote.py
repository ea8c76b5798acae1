"""The zygote enters pod namespaces only around a fork and always returns to
its own: after sandboxes, containers and failures, it is still where it began."""
from __future__ import annotations

import asyncio
import os

import pytest

from agent.runtime.interface import Mount, StartError, State

from .conftest import leftovers

pytestmark = pytest.mark.root

KINDS = ("net", "ipc", "uts", "mnt", "pid", "pid_for_children", "cgroup")


def _ns(pid: int | str) -> dict[str, str]:
    return {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in KINDS}


def test_zygote_stays_in_its_own_namespaces(runtime):
    zygote = runtime.rt.zygote.pid
    before = _ns(zygote)
    assert before == _ns("self")   # spawned from us: the host's namespaces

    async def body():
        shared = runtime.sandbox_config(share_process_namespace=True)
        plain = runtime.sandbox_config()
        for sb in (shared, plain):
            await runtime.rt.create_sandbox(sb)
            cfg = runtime.container_config(sb.pod_id, ("true",))
            await runtime.rt.start(cfg)
            await runtime.rt.wait(cfg.id)
        # A start that fails inside init (the volume's source is missing).
        bad = runtime.container_config(plain.pod_id, ("true",),
                                       mounts=(Mount(target="/data", source="/nonexistent-skiff-src"),))
        with pytest.raises(StartError) as err:
            await runtime.rt.start(bad)
        # The pod still works afterwards.
        st, log, _ = await runtime.run(("hostname",), sandbox=plain)
        return str(err.value), st, log
    message, st, log = asyncio.run(body())
    assert "/nonexistent-skiff-src" in message
    assert st.state is State.EXITED and st.exit_code == 0 and log.strip() == "pod"
    assert _ns(zygote) == before


def test_remove_after_a_failed_start_leaves_nothing(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        bad = runtime.container_config(sb.pod_id, ("nosuch",))
        with pytest.raises(StartError):
            await runtime.rt.start(bad)
        await runtime.rt.remove(bad.id)
        await runtime.rt.remove_sandbox(sb.pod_id)
    asyncio.run(body())
    assert leftovers(runtime.rt) == []
