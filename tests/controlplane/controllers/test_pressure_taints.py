"""Taints by condition: a node reporting MemoryPressure gets the NoSchedule
taint node.kubernetes.io/memory-pressure (and loses it with the condition),
other taints kept; the scheduler's TaintToleration filter keeps pods without
a matching toleration away. Over FakeApiClient."""
from __future__ import annotations

import asyncio

from controlplane.scheduler.plugins.taint_toleration import fits, tolerates
from proto.skiff.v1 import types_pb2
from skiff.api import meta


def _taint(key: str, value: str = "", effect: str = "NoSchedule") -> types_pb2.Taint:
    return types_pb2.Taint(key=key, value=value, effect=effect)


def test_tolerations_as_kubernetes_matches_them():
    taint = _taint("node.kubernetes.io/memory-pressure")
    assert tolerates(types_pb2.Toleration(key="node.kubernetes.io/memory-pressure", operator="Exists"), taint)
    assert tolerates(types_pb2.Toleration(operator="Exists"), taint)                 # empty key: everything
    assert not tolerates(types_pb2.Toleration(key="other", operator="Exists"), taint)
    assert tolerates(types_pb2.Toleration(key="gpu", value="yes"), _taint("gpu", "yes"))
    assert not tolerates(types_pb2.Toleration(key="gpu", value="no"), _taint("gpu", "yes"))
    assert not tolerates(types_pb2.Toleration(key="gpu", operator="Exists", effect="NoExecute"), _taint("gpu"))
    node, pod = types_pb2.Node(), types_pb2.Pod()
    node.spec.taints.append(_taint("soft", effect="PreferNoSchedule"))
    assert fits(pod, node)                                                           # only a preference
    node.spec.taints.append(taint)
    assert not fits(pod, node)
    pod.spec.tolerations.add(key="node.kubernetes.io/memory-pressure", operator="Exists", effect="NoSchedule")
    assert fits(pod, node)


def test_pressure_conditions_taint_and_untaint_the_node():
    from controlplane.controllers.nodelifecycle import NodeLifecycleController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def body():
        c = FakeApiClient()
        now = [1000.0]
        n = types_pb2.Node()
        n.metadata.name = "squeezed"
        n.spec.taints.append(_taint("dedicated", "db"))
        meta.set_condition(n.status.conditions, type_="Ready", status="True", heartbeat=True,
                           now=meta.timestamp(now[0]))
        meta.set_condition(n.status.conditions, type_="MemoryPressure", status="True", now=meta.timestamp(now[0]))
        await c.create(n)
        factory = SharedInformerFactory(c)
        controller = NodeLifecycleController(client=c, factory=factory, grace_seconds=60, clock=lambda: now[0])

        async def taints():
            return sorted(t.key for t in (await c.get("Node", "squeezed")).spec.taints)

        async with running(controller, factory=factory):
            await eventually(lambda: _equal(taints, ["dedicated", "node.kubernetes.io/memory-pressure"]))
            node = await c.get("Node", "squeezed")
            assert [t.effect for t in node.spec.taints] == ["NoSchedule", "NoSchedule"]
            meta.set_condition(node.status.conditions, type_="MemoryPressure", status="False",
                               now=meta.timestamp(now[0]))
            await c.update_status(node)
            await eventually(lambda: _equal(taints, ["dedicated"]))
    asyncio.run(body())


async def _equal(get, want) -> bool:
    return await get() == want
