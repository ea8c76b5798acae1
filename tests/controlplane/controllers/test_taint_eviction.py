"""Node failure over FakeApiClient with an injected clock: a silent node gets
node.kubernetes.io/unreachable:NoExecute (and loses it when heard from again),
new pods get the default 5 s tolerations, and the taint-eviction controller
deletes a pod once its toleration runs out while a pod tolerating forever
stays."""
from __future__ import annotations

import asyncio

from controlplane.api.registry import Admission, Registry
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.tainteviction import TaintEvictionController, eviction_delay
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.controller import SharedInformerFactory

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def _node(name: str, *, heartbeat: float, status: str = "True") -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    meta.set_condition(n.status.conditions, type_="Ready", status=status, heartbeat=True,
                       now=meta.timestamp(heartbeat))
    return n


def _pod(name: str, node: str, *tolerations: types_pb2.Toleration) -> types_pb2.Pod:
    p = types_pb2.Pod(kind="Pod", api_version="v1")
    p.metadata.name, p.metadata.namespace = name, "default"
    p.spec.containers.add(name="c", image="busybox")
    p.spec.node_name = node
    p.spec.tolerations.extend(tolerations)
    return p


async def _taints(c, name: str) -> list[str]:
    return sorted(f"{t.key}:{t.effect}" for t in (await c.get("Node", name)).spec.taints)


async def _eq(coro_fn, want) -> bool:
    return await coro_fn() == want


def test_new_pods_get_the_default_tolerations_unless_they_have_their_own():
    async def body():
        c = FakeApiClient()
        pod = await c.create(_pod("plain", ""))
        got = sorted((t.key, t.operator, t.effect, t.toleration_seconds) for t in pod.spec.tolerations)
        assert got == [(NOT_READY, "Exists", "NoExecute", 5), (UNREACHABLE, "Exists", "NoExecute", 5)]
        own = await c.create(_pod("own", "", types_pb2.Toleration(key=UNREACHABLE, operator="Exists",
                                                                   effect="NoExecute")))
        assert [(t.key, t.HasField("toleration_seconds")) for t in own.spec.tolerations] == \
            [(UNREACHABLE, False), (NOT_READY, True)]
        # Kubernetes' 300 s, one flag away.
        k8s = Registry(store=c.store, admission=Admission(not_ready_toleration_seconds=300,
                                                          unreachable_toleration_seconds=300))
        pod = await k8s.create(_pod("k8s", ""))
        assert {t.toleration_seconds for t in pod.spec.tolerations} == {300}
    asyncio.run(body())


def test_a_restarted_control_plane_gives_old_heartbeats_a_grace_period_of_its_own():
    from controlplane.controllers.nodelifecycle import stale_ready
    node = _node("n", heartbeat=1000.0)          # the agent, last heard of before a `skiff down`
    assert stale_ready(node, now=1100.0, grace_seconds=8)
    assert not stale_ready(node, now=1100.0, grace_seconds=8, not_before=1095.0)   # controller up at 1095
    assert stale_ready(node, now=1104.0, grace_seconds=8, not_before=1095.0)


def test_eviction_delay_follows_the_shortest_toleration():
    node = _node("n", heartbeat=0)
    pod = _pod("p", "n")
    assert eviction_delay(pod, node, now=100.0) is None                      # no NoExecute taint
    node.spec.taints.add(key=UNREACHABLE, effect="NoExecute").time_added.CopyFrom(meta.timestamp(100.0))
    assert eviction_delay(pod, node, now=100.0) == 0.0                       # not tolerated: now
    pod.spec.tolerations.add(key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=5)
    assert eviction_delay(pod, node, now=102.0) == 3.0
    assert eviction_delay(pod, node, now=107.0) == 0.0
    pod.spec.tolerations.add(operator="Exists")                              # tolerates everything forever
    assert eviction_delay(pod, node, now=107.0) is None


def test_silent_node_is_tainted_its_pods_evicted_after_toleration_and_untainted_when_back():
    async def body():
        c = FakeApiClient()
        now = [1000.0]
        await c.create(_node("silent", heartbeat=now[0]))
        await c.create(_pod("short", "silent"))                               # the default 5 s tolerations
        await c.create(_pod("forever", "silent", types_pb2.Toleration(operator="Exists")))
        factory = SharedInformerFactory(c)
        lifecycle = NodeLifecycleController(client=c, factory=factory, grace_seconds=8, clock=lambda: now[0])
        eviction = TaintEvictionController(client=c, factory=factory, clock=lambda: now[0])

        async def pods():
            listed, _ = await c.list("Pod", "default")
            return sorted(p.metadata.name for p in listed if not p.metadata.HasField("deletion_timestamp"))

        async with running(lifecycle, eviction, factory=factory):
            await asyncio.sleep(0.2)
            assert await _taints(c, "silent") == []
            now[0] += 9                                                       # past the 8 s grace
            lifecycle.enqueue(("", "silent"))
            await eventually(lambda: _eq(lambda: _taints(c, "silent"), [f"{UNREACHABLE}:NoExecute"]))
            assert await pods() == ["forever", "short"]                       # tolerated for 5 s
            now[0] += 6
            for name in ("short", "forever"):
                eviction.enqueue(("default", name))
            await eventually(lambda: _eq(pods, ["forever"]))
            # The agent reports again: Ready=True, the taint goes.
            node = await c.get("Node", "silent")
            meta.set_condition(node.status.conditions, type_="Ready", status="True", heartbeat=True,
                               now=meta.timestamp(now[0]))
            await c.update_status(node)
            await eventually(lambda: _eq(lambda: _taints(c, "silent"), []))
            # Ready=False (the agent says it is not ready): not-ready:NoExecute.
            node = await c.get("Node", "silent")
            meta.set_condition(node.status.conditions, type_="Ready", status="False", heartbeat=True,
                               now=meta.timestamp(now[0]))
            await c.update_status(node)
            await eventually(lambda: _eq(lambda: _taints(c, "silent"), [f"{NOT_READY}:NoExecute"]))
    asyncio.run(body())
