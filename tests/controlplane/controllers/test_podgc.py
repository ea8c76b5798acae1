"""Pod GC: a pod bound to a node that does not exist is removed after the quarantine."""
import asyncio

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, NotFound

pytestmark = pytest.mark.etcd


def test_orphaned_pod_is_removed_and_a_pod_on_a_live_node_is_kept(controlplane_factory):
    info = controlplane_factory("--node-monitor-grace-period", "1")

    async def body():
        async with ApiClient(info.address) as c:
            n = types_pb2.Node()
            n.metadata.name = "alive"
            await c.create(n)
            for name, node in (("orphan", "gone-node"), ("kept", "alive")):
                p = types_pb2.Pod()
                p.metadata.name = name
                p.spec.containers.add(name="c", image="busybox")
                p.spec.scheduler_name = "skiff-test-scheduler"
                await c.create(p)
                await c.bind(name, node)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                try:
                    await c.get("Pod", "orphan")
                except NotFound:
                    break
                assert loop.time() < deadline, "the orphaned pod was never removed"
                await asyncio.sleep(0.1)
            assert (await c.get("Pod", "kept")).spec.node_name == "alive"
    asyncio.run(body())


def test_orphans_go_after_the_quarantine_without_etcd():
    """Over FakeApiClient with a stepped clock: a pod on a missing node stays
    while the node may still appear, and goes after the quarantine; a deleted
    node's pods wake up and go the same way."""
    from controlplane.controllers.podgc import PodGcController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def body():
        c = FakeApiClient()
        now = [0.0]
        n = types_pb2.Node()
        n.metadata.name = "alive"
        await c.create(n)
        for name, node in (("orphan", "gone-node"), ("kept", "alive"), ("unbound", "")):
            p = types_pb2.Pod()
            p.metadata.name = name
            p.spec.containers.add(name="c", image="busybox")
            p.spec.scheduler_name = "skiff-test-scheduler"
            await c.create(p)
            if node:
                await c.bind(name, node)
        factory = SharedInformerFactory(c)
        gc = PodGcController(client=c, factory=factory, quarantine_seconds=40, clock=lambda: now[0])

        async def names():
            return sorted(p.metadata.name for p in (await c.list("Pod"))[0])

        async with running(gc, factory=factory):
            await factory.wait_synced()
            await eventually(lambda: "gone-node" in gc._missing_since, what="orphan seen")
            assert await names() == ["kept", "orphan", "unbound"]     # quarantined, not deleted
            now[0] = 41.0
            gc.enqueue(("default", "orphan"))
            await eventually(lambda: _without(names(), "orphan"), what="orphan deleted")
            await c.delete("Node", "alive", namespace="")
            await eventually(lambda: "alive" in gc._missing_since, what="deleted node noticed")
            assert "kept" in await names()
            now[0] = 100.0
            gc.enqueue(("default", "kept"))
            await eventually(lambda: _without(names(), "kept"), what="pod of the deleted node deleted")
            assert await names() == ["unbound"]
    asyncio.run(asyncio.wait_for(body(), 30))


async def _without(names, name):
    return name not in await names
