"""Pod sandboxes: containers of one pod share net, ipc and uts but not pid
(unless shareProcessNamespace), and the pod's network is not the host's."""
from __future__ import annotations

import asyncio
import os

import pytest

from agent.runtime.interface import State

from .conftest import leftovers

pytestmark = pytest.mark.root


def test_containers_of_a_pod_share_localhost_but_not_pids(runtime):
    async def body():
        sb = runtime.sandbox_config(hostname="shared")
        await runtime.rt.create_sandbox(sb)
        server = runtime.container_config(sb.pod_id, ("sh", "-c", "echo from-server | nc -l -p 7070"),
                                          name="server")
        await runtime.rt.start(server)
        client = runtime.container_config(sb.pod_id, ("sh", "-c", """
            for i in $(seq 50); do nc 127.0.0.1 7070 2>/dev/null && break; sleep 0.1; done
            hostname; ps -o comm | grep -c nc || true
        """), name="client")
        await runtime.rt.start(client)
        cst = await runtime.rt.wait(client.id)
        sst = await runtime.rt.wait(server.id)
        return cst, sst, client.log_path.read_text()
    cst, sst, log = asyncio.run(body())
    assert (cst.exit_code, sst.exit_code) == (0, 0), log
    # The server's nc is in another pid namespace: the client sees none of it.
    assert log.split() == ["from-server", "shared", "0"]


def test_share_process_namespace(runtime):
    async def body():
        sb = runtime.sandbox_config(share_process_namespace=True)
        await runtime.rt.create_sandbox(sb)
        a = runtime.container_config(sb.pod_id, ("sleep", "47"), name="a")
        await runtime.rt.start(a)
        st, log, _ = await runtime.run(("ps", "-o", "pid,args"), sandbox=sb)
        a_status = await runtime.rt.status(a.id)
        await runtime.rt.stop(a.id, 1)
        return st, log, a_status
    st, log, a_status = asyncio.run(body())
    assert st.exit_code == 0
    pids = {line.split(None, 1)[1].strip(): int(line.split()[0]) for line in log.splitlines()[1:]}
    assert "sleep 47" in pids
    assert 1 in pids.values()          # the pod's init holds the namespace
    assert a_status.state is State.RUNNING


def test_pod_network_is_its_own(runtime):
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate")))
    assert st.exit_code == 0
    assert log.split() == ["lo", "unknown"]   # lo is up (operstate of lo is "unknown" when up)


def test_host_network_pod(runtime):
    sb = runtime.sandbox_config(host_network=True)
    st, log, _ = asyncio.run(runtime.run(("ls", "/sys/class/net"), sandbox=sb))
    # The host's own devices (others' tests may add and remove veths meanwhile).
    stable = {n for n in os.listdir("/sys/class/net") if not n.startswith(("veth", "skiff"))}
    assert stable <= set(log.split()) and len(stable) > 1, log


def test_cleanup_orphans_removes_pods_not_kept(runtime):
    async def body():
        keep, drop = runtime.sandbox_config(), runtime.sandbox_config()
        pids = []
        for sb in (keep, drop):
            await runtime.rt.create_sandbox(sb)
            cfg = runtime.container_config(sb.pod_id, ("sleep", "60"))
            pids.append((await runtime.rt.start(cfg)).pid)
        await runtime.rt.cleanup_orphans({keep.pod_id})
        remaining = [(s.pod_id, s.state) for s in await runtime.rt.list_containers()]
        sandboxes = [s.pod_id for s in await runtime.rt.list_sandboxes()]
        await runtime.rt.cleanup_orphans(set())
        return keep.pod_id, remaining, sandboxes, pids
    keep, remaining, sandboxes, pids = asyncio.run(body())
    assert remaining == [(keep, State.RUNNING)] and sandboxes == [keep]
    assert leftovers(runtime.rt, pids=pids) == []
