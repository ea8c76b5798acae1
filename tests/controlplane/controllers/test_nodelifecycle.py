"""Node lifecycle: a node without heartbeats becomes Ready=Unknown, its running pods Ready=False."""
import asyncio

import pytest

from controlplane.controllers.nodelifecycle import POD_REASON, REASON, stale_ready
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient


def _node(*, heartbeat: float | None, status: str = "True") -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = "n"
    n.metadata.creation_timestamp.CopyFrom(meta.timestamp(1000.0))
    if heartbeat is not None:
        meta.set_condition(n.status.conditions, type_="Ready", status=status, heartbeat=True,
                           now=meta.timestamp(heartbeat))
    return n


def test_stale_ready_by_heartbeat_age():
    assert not stale_ready(_node(heartbeat=1100.0), now=1130.0, grace_seconds=40)
    assert stale_ready(_node(heartbeat=1100.0), now=1141.0, grace_seconds=40)
    # Never heartbeated: counted from creation.
    assert stale_ready(_node(heartbeat=None), now=1041.0, grace_seconds=40)
    # Already Unknown: nothing more to do.
    assert not stale_ready(_node(heartbeat=1100.0, status="Unknown"), now=9999.0, grace_seconds=40)


@pytest.mark.etcd
def test_silent_node_becomes_ready_unknown(controlplane_factory):
    info = controlplane_factory("--node-monitor-grace-period", "1")

    async def body():
        async with ApiClient(info.address) as c:
            n = types_pb2.Node()
            n.metadata.name = "silent"
            meta.set_condition(n.status.conditions, type_="Ready", status="True", heartbeat=True)
            created = await c.create(n)
            heartbeat = meta.get_condition(created.status.conditions, "Ready").last_heartbeat_time
            p = types_pb2.Pod(kind="Pod", api_version="v1")
            p.metadata.name, p.metadata.namespace = "on-silent", "default"
            p.spec.containers.add(name="c", image="busybox")
            p.spec.node_name = "silent"
            pod = await c.create(p)
            pod.status.phase = "Running"
            meta.set_condition(pod.status.conditions, type_="Ready", status="True")
            await c.update_status(pod)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                node = await c.get("Node", "silent")
                ready = meta.get_condition(node.status.conditions, "Ready")
                if ready.status == "Unknown":
                    break
                assert loop.time() < deadline, "node never became Ready=Unknown"
                await asyncio.sleep(0.1)
            assert ready.reason == REASON
            assert ready.last_heartbeat_time == heartbeat  # when it was last heard of
            while True:
                pod_ready = meta.get_condition((await c.get("Pod", "on-silent", "default")).status.conditions,
                                               "Ready")
                if pod_ready.status == "False":
                    break
                assert loop.time() < deadline, "the pod on the silent node stayed Ready"
                await asyncio.sleep(0.1)
            assert pod_ready.reason == POD_REASON
    asyncio.run(body())


def test_silent_node_and_its_pods_without_etcd():
    """The same as below over FakeApiClient, with the clock stepped: deterministic and fast."""
    from controlplane.controllers.nodelifecycle import NodeLifecycleController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def body():
        c = FakeApiClient()
        now = [1000.0]
        for name in ("silent", "alive"):
            n = types_pb2.Node()
            n.metadata.name = name
            meta.set_condition(n.status.conditions, type_="Ready", status="True", heartbeat=True,
                               now=meta.timestamp(now[0]))
            await c.create(n)
        for name, node in (("on-silent", "silent"), ("on-alive", "alive")):
            p = types_pb2.Pod()
            p.metadata.name = name
            p.spec.containers.add(name="c", image="busybox")
            p.spec.node_name = node
            created = await c.create(p)
            created.status.phase = "Running"
            meta.set_condition(created.status.conditions, type_="Ready", status="True")
            await c.update_status(created)
        factory = SharedInformerFactory(c)
        controller = NodeLifecycleController(client=c, factory=factory, grace_seconds=2, clock=lambda: now[0])

        async def ready(kind, name):
            return meta.get_condition((await c.get(kind, name)).status.conditions, "Ready")

        async with running(controller, factory=factory):
            await factory.wait_synced()
            now[0] = 1001.0
            alive = await c.get("Node", "alive")      # the live node heartbeats
            meta.set_condition(alive.status.conditions, type_="Ready", status="True", heartbeat=True,
                               now=meta.timestamp(now[0]))
            await c.update_status(alive)
            now[0] = 1002.5                            # silent: 2.5 s > grace; alive: 1.5 s
            controller.enqueue(("", "silent"))
            controller.enqueue(("", "alive"))
            node = await eventually(lambda: _unknown(ready("Node", "silent")), what="Ready=Unknown")
            assert node.reason == REASON
            pod = await eventually(lambda: _false(ready("Pod", "on-silent")), what="pod Ready=False")
            assert pod.reason == POD_REASON
            assert (await ready("Node", "alive")).status == "True"
            assert (await ready("Pod", "on-alive")).status == "True"
    asyncio.run(asyncio.wait_for(body(), 30))


async def _unknown(ready):
    condition = await ready
    return condition if condition.status == "Unknown" else None


async def _false(ready):
    condition = await ready
    return condition if condition.status == "False" else None
