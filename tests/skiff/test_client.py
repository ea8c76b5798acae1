"""skiff.client: error mapping, and an informer (skiff.controller) following a real
control plane (its re-list logic against scripted clients is in tests/skiff/controller/)."""
import asyncio

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, Unavailable
from skiff.controller import Informer


def pod(name: str, **labels: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="c", image="busybox")
    p.spec.scheduler_name = "skiff-test-scheduler"  # keep the real scheduler out of it
    return p


def test_unreachable_api_names_the_address(unused_port):
    port = unused_port

    async def body():
        async with ApiClient(f"127.0.0.1:{port}") as c:
            with pytest.raises(Unavailable) as err:
                await c.get("Pod", "x", timeout=10)
            return str(err.value)
    assert asyncio.run(body()) == f"cannot reach the Skiff API at 127.0.0.1:{port}: connection refused"


@pytest.mark.etcd
def test_informer_follows_adds_updates_and_deletes(controlplane):
    async def body():
        async with ApiClient(controlplane) as c:
            await c.create(pod("before", app="web"))
            informer = Informer(c, "Pod", label_selector="app=web")
            seen: asyncio.Queue = asyncio.Queue()

            def handler(key):
                obj = informer.get(key)
                seen.put_nowait((key, None if obj is None else obj.metadata.labels.get("v", "")))
            informer.add_handler(handler)
            informer.start()
            try:
                await asyncio.wait_for(informer.wait_synced(), 20)
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "before"), "")
                await c.create(pod("after", app="web"))
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "after"), "")
                cur = await c.get("Pod", "after")
                cur.metadata.labels["v"] = "2"
                await c.update(cur)
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "after"), "2")
                await c.delete("Pod", "before")
                assert await asyncio.wait_for(seen.get(), 20) == (("default", "before"), None)
                assert sorted(k[1] for k in informer.keys()) == ["after"]
            finally:
                await informer.stop()
    asyncio.run(body())


@pytest.mark.etcd
def test_informer_survives_a_control_plane_restart(controlplane_factory):
    """The agent's situation: the control plane goes away and comes back on the
    same address; what changed meanwhile reaches the cache."""
    first = controlplane_factory()
    port = int(first.address.rsplit(":", 1)[1])

    async def body():
        async with ApiClient(first.address) as c:
            await c.create(pod("one"))
            informer = Informer(c, "Pod")
            informer.start()
            try:
                await asyncio.wait_for(informer.wait_synced(), 20)
                assert [k[1] for k in informer.keys()] == ["one"]
                await asyncio.to_thread(controlplane_factory.stop, first)
                second = await asyncio.to_thread(controlplane_factory, api_port=port)
                async with ApiClient(second.address) as other:
                    await other.create(pod("two"))
                    await other.delete("Pod", "one")
                for _ in range(400):
                    if sorted(k[1] for k in informer.keys()) == ["two"]:
                        break
                    await asyncio.sleep(0.05)
                assert sorted(k[1] for k in informer.keys()) == ["two"]
            finally:
                await informer.stop()
    asyncio.run(body())
