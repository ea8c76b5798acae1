"""The DaemonSet controller over FakeApiClient: a pod per eligible node,
following nodes that join, leave or stop matching; a rolling update within
maxUnavailable."""
from __future__ import annotations

import asyncio

from controlplane.controllers.daemonset import REVISION_HASH, DaemonSetController
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import meta
from skiff.controller import SharedInformerFactory


def _ds(selector=None, image="busybox:1") -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name = "agent"
    ds.spec.selector.match_labels["app"] = "agent"
    ds.spec.template.metadata.labels["app"] = "agent"
    ds.spec.template.spec.containers.add(name="c", image=image)
    if selector:
        ds.spec.template.spec.node_selector.update(selector)
    return ds


async def _node(c, name, **labels):
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update(labels)
    return await c.create(n)


async def _placement(c):
    pods, _ = await c.list("Pod", "default", label_selector="app=agent")
    return sorted(p.spec.node_name for p in pods if not p.metadata.HasField("deletion_timestamp"))


async def _placed(c, expected):
    return await _placement(c) == expected


def run(body):
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        dc = DaemonSetController(client=c, factory=factory)
        async with running(dc, factory=factory):
            await body(c, dc)
    asyncio.run(main())


async def _ready_all(c):
    pods, _ = await c.list("Pod", "default", label_selector="app=agent")
    for p in pods:
        if p.metadata.HasField("deletion_timestamp"):
            continue
        cond = meta.get_condition(p.status.conditions, "Ready")
        if cond is None or cond.status != "True":
            p.status.phase = "Running"
            meta.set_condition(p.status.conditions, type_="Ready", status="True")
            try:
                await c.update_status(p)
            except Exception:
                pass


def test_a_pod_per_node_following_nodes_and_labels():
    async def body(c, dc):
        await _node(c, "n1", disk="ssd")
        await _node(c, "n2", disk="ssd")
        await _node(c, "n3")
        await c.create(_ds(selector={"disk": "ssd"}))
        await eventually(lambda: _placed(c, ["n1", "n2"]), what="a pod on n1 and n2")
        await _node(c, "n4", disk="ssd")
        await eventually(lambda: _placed(c, ["n1", "n2", "n4"]), what="a pod for the node that joined")
        n2 = await c.get("Node", "n2", namespace="")
        del n2.metadata.labels["disk"]
        await c.update(n2)
        await eventually(lambda: _placed(c, ["n1", "n4"]), what="n2's pod gone when it stops matching")
        await c.delete("Node", "n4", namespace="")
        await eventually(lambda: _placed(c, ["n1"]), what="n4's pod gone with the node")
        await _ready_all(c)

        async def status():
            ds = await c.get("DaemonSet", "agent")
            s = ds.status
            return (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready,
                    s.updated_number_scheduled, s.number_misscheduled) == (1, 1, 1, 1, 0)
        await eventually(status, what="status 1/1/1/1")
    run(body)


def test_rolling_update_keeps_max_unavailable():
    async def body(c, dc):
        for i in range(4):
            await _node(c, f"n{i}")
        await c.create(_ds())
        await eventually(lambda: _placed(c, ["n0", "n1", "n2", "n3"]), what="4 pods")
        await _ready_all(c)
        listed, revision = await c.list("Pod", "default", label_selector="app=agent")
        seen: list[int] = []

        async def follow():   # every state between events: ready pods not being deleted
            pods = {p.metadata.name: p for p in listed}
            async for event_type, pod, _ in c.watch("Pod", "default", label_selector="app=agent",
                                                    resource_version=revision):
                if event_type == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
                    pods.pop(pod.metadata.name, None)
                else:
                    pods[pod.metadata.name] = pod
                seen.append(sum(1 for p in pods.values() if (cond := meta.get_condition(p.status.conditions, "Ready"))
                                and cond.status == "True"))
        watcher = asyncio.create_task(follow())
        ds = await c.get("DaemonSet", "agent")
        ds.spec.template.spec.containers[0].image = "busybox:2"
        await c.update(ds)

        async def updated():
            await _ready_all(c)
            pods, _ = await c.list("Pod", "default", label_selector="app=agent")
            live = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
            ready = [p for p in live if (cond := meta.get_condition(p.status.conditions, "Ready"))
                     and cond.status == "True"]
            done = len(live) == len(ready) == 4 and all(p.spec.containers[0].image == "busybox:2" for p in live)
            return live if done else None
        live = await eventually(updated, what="every node on the new template")
        watcher.cancel()
        assert len(seen) >= 8 and min(seen) >= 3, seen   # maxUnavailable 1 of 4
        assert len({p.metadata.labels[REVISION_HASH] for p in live}) == 1
    run(body)
