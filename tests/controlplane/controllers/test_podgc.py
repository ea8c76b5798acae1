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
