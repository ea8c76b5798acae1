"""The namespace controller: a deleted namespace is emptied of every kind, then goes.

One test over FakeApiClient (a bound pod waits for its agent), one on a real
control plane over etcd (the controller as the control plane runs it; an
object with a finalizer holds the namespace in Terminating)."""
import asyncio

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, ApiError, NotFound

NAMESPACED_KINDS = ("Pod", "ConfigMap", "Secret", "Lease", "Event")


def namespace(name: str) -> types_pb2.Namespace:
    ns = types_pb2.Namespace()
    ns.metadata.name = name
    return ns


def objects_in(ns: str) -> list:
    """One object of each namespaced kind (an unscheduled pod: no agent needed)."""
    pod = types_pb2.Pod()
    pod.spec.containers.add(name="c", image="busybox")
    pod.spec.scheduler_name = "skiff-test-scheduler"
    cm, secret, lease, event = types_pb2.ConfigMap(), types_pb2.Secret(), types_pb2.Lease(), types_pb2.Event()
    cm.data["k"] = "v"
    secret.string_data["password"] = "hunter2"
    event.involved_object.kind, event.involved_object.name = "Pod", "p"
    event.reason, event.message = "Testing", "an event in the namespace"
    out = []
    for obj, name in ((pod, "p"), (cm, "c"), (secret, "s"), (lease, "l"), (event, "e")):
        obj.metadata.name, obj.metadata.namespace = name, ns
        out.append(obj)
    return out


async def contents(c, ns: str) -> dict[str, list[str]]:
    found = {}
    for kind in NAMESPACED_KINDS:
        items, _ = await c.list(kind, ns)
        if items:
            found[kind] = sorted(i.metadata.name for i in items)
    return found


async def gone(c, kind: str, name: str, ns: str = "") -> bool:
    try:
        await c.get(kind, name, ns)
    except NotFound:
        return True
    return False


def test_termination_waits_for_a_graceful_pod_then_removes_the_namespace():
    from controlplane.controllers.namespace import NamespaceController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def body():
        c = FakeApiClient()
        await c.create(namespace("dev"))
        await c.create(namespace("keep"))
        for obj in objects_in("dev") + objects_in("keep"):
            await c.create(obj)
        await c.bind("p", "node-1", "dev")          # its agent has to stop it first
        factory = SharedInformerFactory(c)
        controller = NamespaceController(client=c, factory=factory, recheck_seconds=0.05)
        async with running(controller, factory=factory):
            marked = await c.delete("Namespace", "dev", "")
            assert marked.status.phase == "Terminating"
            await eventually(lambda: _only_pod_left(c), what="everything but the bound pod deleted")
            pod = await c.get("Pod", "p", "dev")
            assert pod.metadata.HasField("deletion_timestamp")     # marked for its agent
            assert (await c.get("Namespace", "dev", "")).status.phase == "Terminating"
            await c.delete("Pod", "p", "dev", grace_period_seconds=0)   # the agent confirms
            await eventually(lambda: gone(c, "Namespace", "dev"), what="namespace removed")
        assert await contents(c, "keep") == {k: [n] for k, n in zip(NAMESPACED_KINDS, "pcsle")}
    asyncio.run(body())


async def _only_pod_left(c) -> bool:
    return await contents(c, "dev") == {"Pod": ["p"]}


@pytest.mark.etcd
def test_namespace_termination_with_objects_of_several_kinds_on_etcd(controlplane):
    async def body():
        async with ApiClient(controlplane) as c:
            await c.create(namespace("dev"))
            held = objects_in("dev")
            held[1].metadata.finalizers.append("example.com/hold")   # the ConfigMap
            for obj in held:
                await c.create(obj)
            assert set(await contents(c, "dev")) == set(NAMESPACED_KINDS)
            await c.delete("Namespace", "dev", "")
            assert (await c.get("Namespace", "dev", "")).status.phase == "Terminating"
            late = types_pb2.ConfigMap()
            late.metadata.name, late.metadata.namespace = "late", "dev"
            with pytest.raises(ApiError, match="unable to create new content in namespace dev because it is "
                                               "being terminated"):
                await c.create(late)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while await contents(c, "dev") != {"ConfigMap": ["c"]}:
                assert loop.time() < deadline, await contents(c, "dev")
                await asyncio.sleep(0.1)
            cm = await c.get("ConfigMap", "c", "dev")
            assert cm.metadata.HasField("deletion_timestamp")         # held by its finalizer...
            assert (await c.get("Namespace", "dev", "")).status.phase == "Terminating"   # ...and so is dev
            del cm.metadata.finalizers[:]
            await c.update(cm)                                        # the finalizer is done: it goes
            while not await gone(c, "Namespace", "dev"):
                assert loop.time() < deadline, "namespace dev was never removed"
                await asyncio.sleep(0.1)
            with pytest.raises(NotFound, match='namespaces "dev" not found'):
                await c.create(late)
    asyncio.run(asyncio.wait_for(body(), 60))
