"""The scheduler: binds what fits, leaves the rest Pending with Kubernetes'
message, and retries when a node appears - over FakeApiClient (no etcd) and,
once, in a real control plane on real etcd."""
import asyncio

import pytest

from controlplane.metrics import Metrics
from controlplane.scheduler.scheduler import Scheduler
from controlplane.testing import FakeApiClient, running
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient
from skiff.controller import SharedInformerFactory


def node(name: str, memory: str) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.status.capacity.update({"cpu": "2", "memory": memory, "pods": "110"})
    n.status.allocatable.update({"cpu": "2", "memory": memory, "pods": "110"})
    meta.set_condition(n.status.conditions, type_="Ready", status="True", reason="AgentReady", heartbeat=True)
    return n


def pod(name: str, memory: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.spec.containers.add(name="c", image="busybox").resources.requests["memory"] = memory
    return p


async def eventually(check, *, what: str, timeout: float = 20.0):
    """Poll `check` (async, returns a value or None) until it gives a value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def with_scheduler(body) -> None:
    """Run body(client) against FakeApiClient with a Scheduler working on it."""
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        async with running(Scheduler(client=c, factory=factory, metrics=Metrics()), factory=factory):
            await asyncio.wait_for(body(c), 60)
    asyncio.run(main())


async def too_big_stays_pending_fitting_one_is_bound(c) -> None:
    await c.create(node("node-1", "1Gi"))  # as an agent registers: status included

    await c.create(pod("big", "2Gi"))
    await c.create(pod("small", "512Mi"))

    async def small_bound():
        p = await c.get("Pod", "small")
        return p if p.spec.node_name else None
    small = await eventually(small_bound, what="pod small to be bound")
    assert small.spec.node_name == "node-1"
    assert meta.get_condition(small.status.conditions, "PodScheduled").status == "True"

    async def big_marked():
        p = await c.get("Pod", "big")
        cond = meta.get_condition(p.status.conditions, "PodScheduled")
        # (Until the scheduler has seen node-1 it may say "0/0 nodes"; wait for its verdict on node-1.)
        return p if cond is not None and cond.status == "False" and cond.message.startswith("0/1") else None
    big = await eventually(big_marked, what="pod big to get PodScheduled=False about node-1")
    cond = meta.get_condition(big.status.conditions, "PodScheduled")
    assert big.spec.node_name == "" and big.status.phase == "Pending"
    assert cond.reason == "Unschedulable"
    assert cond.message == ("0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
                            "1 No preemption victims found for incoming pod.")

    # A second node with room: the parked pod is retried and bound there.
    await c.create(node("node-2", "4Gi"))

    async def big_bound():
        p = await c.get("Pod", "big")
        return p if p.spec.node_name else None
    assert (await eventually(big_bound, what="pod big to be bound")).spec.node_name == "node-2"

    # What `describe pod big` shows: why it waited, then where it went.
    async def scheduled_event():   # recorded after the binding (binding is asynchronous to the cycle)
        events, _ = await c.list("Event", namespace="default")
        about = [(e.reason, e.message) for e in events if e.involved_object.name == "big"]
        return about if ("Scheduled", "Successfully assigned default/big to node-2") in about else None
    about_big = await eventually(scheduled_event, what="the Scheduled event of big")
    assert ("FailedScheduling", cond.message) in about_big


def test_too_big_pod_stays_pending_fitting_one_is_bound():
    with_scheduler(too_big_stays_pending_fitting_one_is_bound)


@pytest.mark.etcd
def test_too_big_pod_stays_pending_fitting_one_is_bound_in_a_real_control_plane(controlplane):
    async def main():
        async with ApiClient(controlplane) as c:
            await asyncio.wait_for(too_big_stays_pending_fitting_one_is_bound(c), 60)
    asyncio.run(main())


def test_pods_scheduled_back_to_back_do_not_overcommit():
    async def body(c):
        await c.create(node("node-1", "1Gi"))
        for i in range(4):
            await c.create(pod(f"p{i}", "400Mi"))

        async def settled():
            items, _ = await c.list("Pod")
            done = [p for p in items if p.spec.node_name or
                    (meta.get_condition(p.status.conditions, "PodScheduled") or types_pb2.PodCondition()).status
                    == "False"]
            return items if len(done) == 4 else None
        items = await eventually(settled, what="all four pods to be decided")
        assert sum(1 for p in items if p.spec.node_name == "node-1") == 2  # 2 x 400Mi fit in 1Gi, 3 do not
    with_scheduler(body)
