"""The ReplicaSet controller over FakeApiClient (the real API logic, no etcd):
it keeps the count, adopts and releases by labels, deletes in Kubernetes'
order, reports a refused creation, and never fights another ReplicaSet."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import meta
from skiff.client import Invalid
from skiff.controller import SharedInformerFactory


def _rs(name: str = "frontend", replicas: int = 3, labels: dict | None = None,
        min_ready: int = 0) -> apps_pb2.ReplicaSet:
    labels = labels or {"tier": "frontend"}
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = name
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = min_ready
    rs.spec.selector.match_labels.update(labels)
    rs.spec.template.metadata.labels.update(labels)
    rs.spec.template.spec.containers.add(name="c", image="busybox")
    return rs


def _orphan(name: str, labels: dict) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.labels.update(labels)
    pod.spec.containers.add(name="c", image="busybox")
    return pod


async def _pods(client, **labels):
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods, _ = await client.list("Pod", "default", label_selector=selector)
    return [p for p in pods if not p.metadata.HasField("deletion_timestamp")]


def _owner(pod):
    refs = [r for r in pod.metadata.owner_references if r.controller]
    return refs[0].name if refs else None


def run(body, *, client=None, clock=None):
    async def main():
        c = client or FakeApiClient()
        factory = SharedInformerFactory(c)
        kwargs = {"clock": clock} if clock else {}
        controller = ReplicaSetController(client=c, factory=factory, **kwargs)
        async with running(controller, factory=factory):
            await body(c, controller)
    asyncio.run(main())


def test_creates_the_pods_and_reports_them(kubelet_class):
    async def body(c, controller):
        rs = await c.create(_rs(replicas=3))
        pods = await eventually(lambda: _count(c, 3), what="3 pods")
        for pod in pods:
            assert pod.metadata.name.startswith("frontend-")
            assert _owner(pod) == "frontend" and pod.metadata.owner_references[0].uid == rs.metadata.uid
            assert pod.metadata.labels["tier"] == "frontend"
        await kubelet_class(c).ready()

        async def status():
            s = (await c.get("ReplicaSet", "frontend")).status
            return (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas,
                    s.observed_generation) == (3, 3, 3, 3, 1)
        await eventually(status, what="status 3/3/3/3")
    run(body)


async def _count(c, n, **labels):
    pods = await _pods(c, **(labels or {"tier": "frontend"}))
    return pods if len(pods) == n else None


def test_a_deleted_pod_is_replaced_and_scale_down_takes_the_not_ready_first(kubelet_class):
    async def body(c, controller):
        await c.create(_rs(replicas=3))
        pods = await eventually(lambda: _count(c, 3), what="3 pods")
        await kubelet_class(c).ready(select=lambda p: p.metadata.name != pods[1].metadata.name)
        await c.delete("Pod", pods[0].metadata.name)
        await eventually(lambda: _count(c, 3), what="a replacement")
        names = {p.metadata.name for p in await _pods(c, tier="frontend")}
        assert pods[0].metadata.name not in names
        # The replacement and pods[1] are not ready; pods[2] is: scaling to 1 keeps pods[2].
        rs = await c.get("ReplicaSet", "frontend")
        rs.spec.replicas = 1
        await c.update(rs)
        left = await eventually(lambda: _count(c, 1), what="scaled down to 1")
        assert left[0].metadata.name == pods[2].metadata.name
    run(body)


def test_adopts_matching_orphans_and_releases_pods_whose_labels_change():
    async def body(c, controller):
        await c.create(_orphan("stray", {"tier": "frontend"}))
        await c.create(_rs(replicas=2))
        pods = await eventually(lambda: _count(c, 2), what="2 pods")
        assert "stray" in {p.metadata.name for p in pods}
        await eventually(lambda: _owned(c, "stray", "frontend"), what="stray adopted")
        stray = await c.get("Pod", "stray")
        stray.metadata.labels["tier"] = "debug"
        await c.update(stray)
        await eventually(lambda: _count(c, 2), what="a replacement for the released pod")
        await eventually(lambda: _owned(c, "stray", None), what="stray released")
    run(body)


async def _owned(c, name, owner):
    return _owner(await c.get("Pod", name)) == owner


def test_overlapping_selectors_never_fight():
    async def body(c, controller):
        await c.create(_rs("a", replicas=2, labels={"app": "web"}))
        await eventually(lambda: _count(c, 2, app="web"), what="a's pods")
        await c.create(_rs("b", replicas=1, labels={"app": "web"}))
        await eventually(lambda: _count(c, 3, app="web"), what="b's own pod")
        await asyncio.sleep(0.3)   # a few more reconciles: nothing moves
        pods = await _pods(c, app="web")
        assert sorted(_owner(p) for p in pods) == ["a", "a", "b"]
    run(body)


class RefusingClient(FakeApiClient):
    """Pod creation refused, as by an admission rule or a quota."""

    def __init__(self) -> None:
        super().__init__()
        self.pod_creates = 0

    async def create(self, obj, **kw):
        if isinstance(obj, types_pb2.Pod):
            self.pod_creates += 1
            raise Invalid('pods "x" is forbidden: exceeded quota: pods=0', field_path="")
        return await super().create(obj, **kw)


def test_refused_creation_is_a_replica_failure_and_slow_start_stops_the_flood():
    client = RefusingClient()

    async def body(c, controller):
        await c.create(_rs(replicas=50))

        async def failure():
            rs = await c.get("ReplicaSet", "frontend")
            cond = meta.get_condition(rs.status.conditions, "ReplicaFailure")
            return cond if cond is not None and cond.status == "True" else None
        cond = await eventually(failure, what="ReplicaFailure")
        assert cond.reason == "FailedCreate" and "exceeded quota" in cond.message
        # One call per attempt (a batch of 1 that fails stops there), not 50.
        assert client.pod_creates <= controller.queue.num_requeues(("default", "frontend")) + 1
    run(body, client=client)


def test_available_waits_for_min_ready_seconds(kubelet_class):
    now = [1000.0]

    async def body(c, controller):
        await c.create(_rs(replicas=2, min_ready=30))
        await eventually(lambda: _count(c, 2), what="2 pods")
        await kubelet_class(c).ready(now=now[0])

        async def counts():
            s = (await c.get("ReplicaSet", "frontend")).status
            return s.ready_replicas, s.available_replicas
        await eventually(lambda: _eq(counts(), (2, 0)), what="ready, not yet available")
        now[0] += 31
        controller.enqueue(("default", "frontend"))
        await eventually(lambda: _eq(counts(), (2, 2)), what="available after minReadySeconds")
    run(body, clock=lambda: now[0])


async def _eq(coro, expected):
    return await coro == expected
