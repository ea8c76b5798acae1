"""Leader election: two control planes on one etcd, one leads; when it stops,
the other takes the lease and schedules."""
import asyncio
import os
import signal

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient

pytestmark = pytest.mark.etcd


async def _holder(c: ApiClient) -> str:
    try:
        lease = await c.get("Lease", "skiff-controlplane", "skiff-system")
    except Exception:
        return ""
    return lease.spec.holder_identity


async def _eventually(check, what: str, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_standby_takes_over_when_the_leader_stops(controlplane_factory):
    first = controlplane_factory("--identity", "first", "--leader-lease-seconds", "2")

    async def first_leads():
        async with ApiClient(first.address) as c:
            await _eventually(lambda: _holder_is(c, "first"), "first to hold the lease")
    asyncio.run(first_leads())

    second = controlplane_factory("--identity", "second", "--leader-lease-seconds", "2")

    async def still_first():
        async with ApiClient(second.address) as c:
            await asyncio.sleep(1)
            return await _holder(c)
    assert asyncio.run(still_first()) == "first"

    # Stop the leader (SIGTERM: it releases the lease on the way out).
    os.kill(first.pid, signal.SIGTERM)

    async def second_leads_and_schedules():
        async with ApiClient(second.address) as c:
            await _eventually(lambda: _holder_is(c, "second"), "second to take the lease")
            n = types_pb2.Node()
            n.metadata.name = "node-1"
            n.status.allocatable.update({"cpu": "1", "memory": "1Gi", "pods": "10"})
            meta.set_condition(n.status.conditions, type_="Ready", status="True", heartbeat=True)
            await c.create(n)
            p = types_pb2.Pod()
            p.metadata.name = "p"
            p.spec.containers.add(name="c", image="busybox")
            await c.create(p)

            async def bound():
                got = await c.get("Pod", "p")
                return got.spec.node_name
            assert await _eventually(bound, "the new leader to bind the pod") == "node-1"
    asyncio.run(second_leads_and_schedules())


async def _holder_is(c: ApiClient, identity: str) -> bool:
    return await _holder(c) == identity
