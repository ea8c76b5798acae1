"""The Deployment controller with the ReplicaSet controller over FakeApiClient
(the real API logic, no etcd): rollouts keep their bounds as seen by a watch,
revisions and rollback, Recreate, pause, the progress deadline, history
cleanup and scaling."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import apps_pb2
from skiff.api import kinds, manifest, meta, rollout
from skiff.cli._objects import change
from skiff.controller import SharedInformerFactory

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "kubernetes-docs"


def _deployment(name: str = "web", replicas: int = 4, image: str = "busybox:1", *, surge: str = "1",
                unavailable: str = "1", recreate: bool = False, deadline: int | None = None,
                history: int | None = None) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="c", image=image)
    if recreate:
        d.spec.strategy.type = "Recreate"
    else:
        d.spec.strategy.rolling_update.max_surge = surge
        d.spec.strategy.rolling_update.max_unavailable = unavailable
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    if history is not None:
        d.spec.revision_history_limit = history
    return d


def run(body, *, clock=None):
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        kwargs = {"clock": clock} if clock else {}
        controllers = (ReplicaSetController(client=c, factory=factory, **kwargs),
                       DeploymentController(client=c, factory=factory, **kwargs))
        async with running(*controllers, factory=factory):
            await body(c, controllers[1])
    asyncio.run(main())


async def _sets(c, name="web"):
    items, _ = await c.list("ReplicaSet", "default", label_selector=f"app={name}")
    return sorted(items, key=rollout.revision_of)


async def _complete(c, name="web"):
    d = await c.get("Deployment", name)
    cond = meta.get_condition(d.status.conditions, "Progressing")
    s = d.status
    done = (s.observed_generation >= d.metadata.generation and s.updated_replicas == d.spec.replicas
            and s.replicas == d.spec.replicas and s.available_replicas == d.spec.replicas
            and cond is not None and cond.reason == "NewReplicaSetAvailable")
    return d if done else None


def _ready(kubelet):
    return asyncio.create_task(kubelet.keep_ready())


async def _set_image(c, image, name="web"):
    def to_image(d):
        d.spec.template.spec.containers[0].image = image
    await _edit(c, to_image, name)


async def _edit(c, mutate, name="web"):
    """Read, mutate and update as `skiff edit` does: again on a Conflict (the controller
    writes the Deployment's status meanwhile)."""
    def changed(d):
        mutate(d)
        return d
    await change(c, kinds.kind_named("Deployment"), "default", name, changed)


def test_docs_deployment_gets_a_hashed_replica_set_and_reports_complete(kubelet_class):
    async def body(c, dc):
        (doc,) = manifest.load([str(DOCS / "controllers/nginx-deployment.yaml")])
        await c.apply(doc.obj)
        ready = _ready(kubelet_class(c))
        try:
            d = await eventually(lambda: _complete(c, "nginx-deployment"), what="rollout complete")
        finally:
            ready.cancel()
        (rs,) = await _sets(c, "nginx")
        h = rs.metadata.labels[rollout.POD_TEMPLATE_HASH]
        assert rs.metadata.name == f"nginx-deployment-{h}"
        assert rs.spec.selector.match_labels[rollout.POD_TEMPLATE_HASH] == h
        assert rs.metadata.annotations[rollout.REVISION] == "1" == d.metadata.annotations[rollout.REVISION]
        pods, _ = await c.list("Pod", "default", label_selector=f"pod-template-hash={h}")
        assert len(pods) == 3
        available = meta.get_condition(d.status.conditions, "Available")
        assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
        assert (d.status.ready_replicas, d.status.updated_replicas, d.status.unavailable_replicas) == (3, 3, 0)
    run(body)


async def _watch_bounds(c, *, seen):
    """Follow the pods through a watch (from a list, so every state in
    between is seen); record (pods, ready pods) after every event. Pods being
    deleted no longer count, as for the ReplicaSet controller."""
    listed, revision = await c.list("Pod", "default", label_selector="app=web")
    pods = {p.metadata.name: p for p in listed}
    async for event_type, pod, _ in c.watch("Pod", "default", label_selector="app=web",
                                            resource_version=revision):
        if event_type == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
            pods.pop(pod.metadata.name, None)
        else:
            pods[pod.metadata.name] = pod
        ready = sum(1 for p in pods.values()
                    if (cond := meta.get_condition(p.status.conditions, "Ready")) and cond.status == "True")
        seen.append((len(pods), ready))


def test_rolling_update_keeps_its_bounds_and_undo_returns_the_old_template(kubelet_class):
    async def body(c, dc):
        await c.create(_deployment(replicas=4, surge="1", unavailable="1"))
        ready = _ready(kubelet_class(c))
        try:
            await eventually(lambda: _complete(c), what="first rollout")
            seen: list[tuple[int, int]] = []
            watcher = asyncio.create_task(_watch_bounds(c, seen=seen))
            await asyncio.sleep(0.05)
            await _set_image(c, "busybox:2")
            await eventually(lambda: _image_done(c, "busybox:2"), what="rolled to busybox:2")
            watcher.cancel()
            # replicas 4, maxSurge 1, maxUnavailable 1: at most 5 pods, at least 3 ready.
            assert len(seen) >= 8, seen   # 4 created, 4 deleted at least
            assert max(total for total, _ in seen) <= 5, seen
            assert min(ready for _, ready in seen) >= 3, seen
            sets = await _sets(c)
            assert [rollout.revision_of(rs) for rs in sets] == [1, 2]
            assert [rs.spec.replicas for rs in sets] == [0, 4]
            # rollout undo: the Deployment gets revision 1's template back; that
            # ReplicaSet becomes revision 3 and takes the pods again.
            def undo(d):
                _, target = rollout.rollback_target(d, rollout.owned_by(d, sets))
                d.spec.template.CopyFrom(rollout.rolled_back_template(target))
            await _edit(c, undo)
            d = await eventually(lambda: _image_done(c, "busybox:1"), what="rolled back")
            sets = await _sets(c)
            assert len(sets) == 2
            assert {rs.spec.template.spec.containers[0].image: rollout.revision_of(rs) for rs in sets} == \
                {"busybox:2": 2, "busybox:1": 3}
            assert d.metadata.annotations[rollout.REVISION] == "3"
        finally:
            ready.cancel()
    run(body)


async def _image_done(c, image, name="web"):
    d = await _complete(c, name)
    if d is None or d.spec.template.spec.containers[0].image != image:
        return None
    pods, _ = await c.list("Pod", "default", label_selector=f"app={name}")
    live = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
    return d if all(p.spec.containers[0].image == image for p in live) else None


def test_recreate_never_runs_old_and_new_pods_together(kubelet_class):
    async def body(c, dc):
        await c.create(_deployment(replicas=3, recreate=True))
        ready = _ready(kubelet_class(c))
        try:
            await eventually(lambda: _complete(c), what="first rollout")
            images: list[set[str]] = []

            async def follow():
                pods: dict[str, str] = {}
                async for event_type, pod, _ in c.watch("Pod", "default", label_selector="app=web"):
                    if event_type == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
                        pods.pop(pod.metadata.name, None)
                    else:
                        pods[pod.metadata.name] = pod.spec.containers[0].image
                    images.append(set(pods.values()))
            watcher = asyncio.create_task(follow())
            await asyncio.sleep(0.05)
            await _set_image(c, "busybox:2")
            await eventually(lambda: _image_done(c, "busybox:2"), what="recreated")
            watcher.cancel()
            assert all(len(s) <= 1 for s in images), images
            assert {"busybox:2"} in images
        finally:
            ready.cancel()
    run(body)


def test_paused_deployment_does_not_roll_until_resumed(kubelet_class):
    async def body(c, dc):
        await c.create(_deployment(replicas=2))
        ready = _ready(kubelet_class(c))
        try:
            await eventually(lambda: _complete(c), what="first rollout")
            await _edit(c, lambda d: setattr(d.spec, "paused", True))

            async def paused():
                d = await c.get("Deployment", "web")
                cond = meta.get_condition(d.status.conditions, "Progressing")
                return cond.reason == "DeploymentPaused" and cond.status == "Unknown"
            await eventually(paused, what="Progressing=Unknown DeploymentPaused")
            await _set_image(c, "busybox:2")
            await asyncio.sleep(0.3)
            assert len(await _sets(c)) == 1
            await _edit(c, lambda d: setattr(d.spec, "paused", False))
            await eventually(lambda: _image_done(c, "busybox:2"), what="rolled after resume")
        finally:
            ready.cancel()
    run(body)


def test_a_rollout_without_progress_exceeds_its_deadline(kubelet_class):
    now = [10_000.0]

    async def body(c, dc):
        await c.create(_deployment(replicas=2, deadline=60, surge="1", unavailable="0"))
        kubelet = kubelet_class(c)

        async def ready_pods():
            await kubelet.ready(now=now[0])
            return await _ready_count(c, 2)
        await eventually(ready_pods, what="2 ready pods")
        # No kubelet from here: the new image never becomes ready.
        await eventually(lambda: _complete(c), what="first rollout")
        await _set_image(c, "busybox:broken")
        await eventually(lambda: _progressing(c, "ReplicaSetUpdated"), what="progressing")

        async def stuck():  # one new pod that never gets ready; the old two stay
            d = await c.get("Deployment", "web")
            return (d.status.replicas, d.status.updated_replicas, d.status.available_replicas) == (3, 1, 2)
        await eventually(stuck, what="the rollout stuck at one new pod")
        now[0] += 61
        dc.enqueue(("default", "web"))
        cond = await eventually(lambda: _progressing(c, "ProgressDeadlineExceeded"), what="deadline exceeded")
        assert cond.status == "False" and "has timed out progressing" in cond.message
    run(body, clock=lambda: now[0])


async def _ready_count(c, n):
    pods, _ = await c.list("Pod", "default")
    return sum(1 for p in pods if (cond := meta.get_condition(p.status.conditions, "Ready"))
               and cond.status == "True") == n


async def _progressing(c, reason):
    d = await c.get("Deployment", "web")
    cond = meta.get_condition(d.status.conditions, "Progressing")
    return cond if cond is not None and cond.reason == reason else None


def test_history_beyond_the_limit_is_deleted_and_scaling_resizes(kubelet_class):
    async def body(c, dc):
        await c.create(_deployment(replicas=2, history=1))
        ready = _ready(kubelet_class(c))
        try:
            for image in ("busybox:2", "busybox:3"):
                await eventually(lambda: _complete(c), what="rollout")
                await _set_image(c, image)
                await eventually(lambda: _image_done(c, image), what=f"rolled to {image}")

            async def two_sets():
                sets = await _sets(c)
                return sets if len(sets) == 2 else None
            sets = await eventually(two_sets, what="history cut to 1 old ReplicaSet")
            assert [rollout.revision_of(rs) for rs in sets] == [2, 3]
            await _edit(c, lambda d: setattr(d.spec, "replicas", 5))

            async def five():
                d = await _complete(c)
                return d is not None and d.status.replicas == 5
            await eventually(five, what="scaled to 5")
            assert [rs.spec.replicas for rs in await _sets(c)] == [0, 5]
        finally:
            ready.cancel()
    run(body)


@pytest.mark.etcd
def test_the_control_plane_runs_the_workload_controllers(controlplane):
    """Over the real API and etcd: the docs' Deployment gets its ReplicaSet and
    pods (unscheduled here: no nodes), with events on the way."""
    from skiff.client import ApiClient

    async def body():
        async with ApiClient(controlplane) as c:
            (doc,) = manifest.load([str(DOCS / "controllers/nginx-deployment.yaml")])
            await c.apply(doc.obj)

            async def pods():
                items, _ = await c.list("Pod", "default", label_selector="app=nginx")
                return items if len(items) == 3 else None
            items = await eventually(pods, timeout=30, what="3 pods")
            (rs,) = (await c.list("ReplicaSet", "default"))[0]
            assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in items)
            events, _ = await c.list("Event", "default")
            reasons = {(e.involved_object.kind, e.reason) for e in events}
            assert ("Deployment", "ScalingReplicaSet") in reasons and ("ReplicaSet", "SuccessfulCreate") in reasons
    asyncio.run(body())


def test_a_change_cause_goes_to_the_new_replica_set_only(kubelet_class):
    # `set image` then `annotate kubernetes.io/change-cause=...`, as kubectl users do: the
    # old ReplicaSet, scaled down after the annotation, keeps its own cause (Kubernetes'
    # scaleReplicaSet sets only the size annotations), so `rollout history` tells them apart.
    async def body(c, dc):
        d = _deployment(replicas=2, surge="0", unavailable="1")
        d.metadata.annotations[rollout.CHANGE_CAUSE] = "v1"
        await c.create(d)
        ready = _ready(kubelet_class(c))
        try:
            await eventually(lambda: _complete(c), what="first rollout")
            def to_v2(d):
                d.spec.template.spec.containers[0].image = "busybox:2"
                d.metadata.annotations[rollout.CHANGE_CAUSE] = "v2"
            await _edit(c, to_v2)
            await eventually(lambda: _image_done(c, "busybox:2"), what="rolled to busybox:2")
            sets = await _sets(c)
            assert [(rs.spec.replicas, rs.metadata.annotations[rollout.CHANGE_CAUSE]) for rs in sets] == \
                [(0, "v1"), (2, "v2")]
        finally:
            ready.cancel()
    run(body)
