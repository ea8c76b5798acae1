"""The HPA controller over FakeApiClient, with injected pod metrics and a stepped
clock: it scales a ReplicaSet up at once, back down only after the manifest's
scale-down window, reports status and conditions, and warns when the pods have
no CPU requests."""
import asyncio

from google.protobuf import json_format

from controlplane.controllers.horizontalpodautoscaler import HorizontalPodAutoscalerController
from controlplane.events import EventRecorder
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import apps_pb2, autoscaling_pb2, types_pb2
from skiff.api import kinds, meta
from skiff.controller import SharedInformerFactory


class FakeMetrics:
    def __init__(self) -> None:
        self.cpu: dict[str, int] = {}

    async def usage(self, pods):
        return {(p.metadata.namespace, p.metadata.name): (self.cpu[p.metadata.name], 1 << 20)
                for p in pods if p.metadata.name in self.cpu}


def hpa_manifest(window: int = 30) -> autoscaling_pb2.HorizontalPodAutoscaler:
    return json_format.ParseDict({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": window}}}},
        autoscaling_pb2.HorizontalPodAutoscaler())


async def setup(c, *, request: str | None = "100m"):
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = "web"
    rs.spec.replicas = 2
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="burn", image="busybox")
    await c.create(rs)
    for name in ("web-0", "web-1"):
        p = types_pb2.Pod()
        p.metadata.name = name
        p.metadata.labels["app"] = "web"
        container = p.spec.containers.add(name="burn", image="busybox")
        if request:
            container.resources.requests["cpu"] = request
        p = await c.create(p)
        p.status.phase = "Running"
        meta.set_condition(p.status.conditions, type_="Ready", status="True")
        await c.update_status(p)
    await c.create(hpa_manifest())


def condition(hpa, type_):
    cond = meta.get_condition(hpa.status.conditions, type_)
    return (cond.status, cond.reason) if cond else None


async def events(c, reason):
    return [e for e in (await c.list("Event"))[0] if e.reason == reason]


def test_scales_up_at_once_and_down_after_the_window():
    async def body():
        c = FakeApiClient()
        await setup(c)
        now = [1000.0]
        source = FakeMetrics()
        factory = SharedInformerFactory(c)
        hpa = HorizontalPodAutoscalerController(client=c, factory=factory, metrics=source, sync_seconds=3600,
                                                clock=lambda: now[0],
                                                recorder=EventRecorder(client=c, component="horizontal-pod-autoscaler"))

        async def replicas():
            return (await c.get("ReplicaSet", "web")).spec.replicas

        async with running(hpa, factory=factory):
            await factory.wait_synced()
            source.cpu = {"web-0": 90, "web-1": 90}     # 90 % of requests against 50 %
            hpa.enqueue(("default", "web"))
            await eventually(lambda: _is(replicas(), 4), what="scaled up to ceil(1.8 * 2)")
            await eventually(lambda: _desired(c, 4), what="status written")
            status = (await c.get("HorizontalPodAutoscaler", "web")).status
            hpa_obj = await c.get("HorizontalPodAutoscaler", "web")
            assert status.current_metrics[0].resource.current.average_utilization == 90
            assert condition(hpa_obj, "AbleToScale") == ("True", "SucceededRescale")
            assert condition(hpa_obj, "ScalingActive") == ("True", "ValidMetricFound")
            assert condition(hpa_obj, "ScalingLimited") == ("False", "DesiredWithinRange")
            [rescale] = await events(c, "SuccessfulRescale")
            assert rescale.message == "New size: 4; reason: cpu resource utilization (percentage of request) above target"

            source.cpu = {"web-0": 5, "web-1": 5}       # the load stopped
            now[0] += 10
            hpa.enqueue(("default", "web"))
            await eventually(lambda: _recommended(hpa, 2), what="second recommendation")
            assert await replicas() == 4                 # inside the 30 s window: kept
            now[0] += 31
            hpa.enqueue(("default", "web"))
            await eventually(lambda: _is(replicas(), 1), what="scaled down after the window")
            await eventually(lambda: _desired(c, 1), what="status written")
    asyncio.run(asyncio.wait_for(body(), 30))


def test_pods_without_requests_get_a_warning_and_no_scaling():
    async def body():
        c = FakeApiClient()
        await setup(c, request=None)
        source = FakeMetrics()
        source.cpu = {"web-0": 90, "web-1": 90}
        factory = SharedInformerFactory(c)
        hpa = HorizontalPodAutoscalerController(client=c, factory=factory, metrics=source, sync_seconds=3600,
                                                recorder=EventRecorder(client=c, component="horizontal-pod-autoscaler"))
        async with running(hpa, factory=factory):
            await factory.wait_synced()
            hpa.enqueue(("default", "web"))
            [warning] = await eventually(lambda: events(c, "FailedGetResourceMetric"), what="warning event")
            assert warning.type == "Warning"
            assert warning.message == ("failed to get cpu utilization: missing request for cpu in container burn "
                                       "of Pod web-0")
            obj = await eventually(lambda: _with_condition(c, "ScalingActive"), what="condition")
            assert condition(obj, "ScalingActive") == ("False", "FailedGetResourceMetric")
            assert (await c.get("ReplicaSet", "web")).spec.replicas == 2
    asyncio.run(asyncio.wait_for(body(), 30))


def test_defaults_and_the_printed_row():
    c = FakeApiClient()

    async def body():
        created = await c.create(hpa_manifest())
        behavior = created.spec.behavior
        assert behavior.scale_up.stabilization_window_seconds == 0
        assert [(p.type, p.value, p.period_seconds) for p in behavior.scale_up.policies] == [
            ("Pods", 4, 15), ("Percent", 100, 15)]
        assert behavior.scale_down.stabilization_window_seconds == 30     # the manifest's
        assert [(p.type, p.value) for p in behavior.scale_down.policies] == [("Percent", 100)]
        strategy = kinds.kind_named("HorizontalPodAutoscaler").strategy
        assert strategy.columns(wide=False) == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS",
                                                "AGE"]
        from datetime import datetime, timezone
        row = strategy.row(created, wide=False, now=datetime.now(timezone.utc))
        assert row[:6] == ["web", "ReplicaSet/web", "cpu: <unknown>/50%", "1", "10", "0"]
    asyncio.run(body())


async def _is(value, expected):
    return await value == expected


async def _desired(c, n):
    return (await c.get("HorizontalPodAutoscaler", "web")).status.desired_replicas == n


async def _with_condition(c, type_):
    obj = await c.get("HorizontalPodAutoscaler", "web")
    return obj if meta.get_condition(obj.status.conditions, type_) else None


def _recommended(hpa, n):
    return len(hpa._recommendations.get(("default", "web"), [])) >= n


def test_memory_utilization_of_requests():
    """A memory target: the pods' working sets (1 MiB each) are 100 % of their 1Mi requests, twice the target."""
    async def body():
        c = FakeApiClient()
        await setup(c, request=None)
        for name in ("web-0", "web-1"):
            pod = await c.get("Pod", name)
            pod.spec.containers[0].resources.requests["memory"] = "1Mi"
            await c.delete("Pod", name, grace_period_seconds=0)
            pod.metadata.resource_version = ""
            pod.metadata.uid = ""
            await c.create(pod)
        hpa_obj = await c.get("HorizontalPodAutoscaler", "web")
        hpa_obj.spec.metrics[0].resource.name = "memory"
        await c.update(hpa_obj)
        source = FakeMetrics()
        source.cpu = {"web-0": 0, "web-1": 0}
        factory = SharedInformerFactory(c)
        hpa = HorizontalPodAutoscalerController(client=c, factory=factory, metrics=source, sync_seconds=3600,
                                                recorder=EventRecorder(client=c, component="horizontal-pod-autoscaler"))
        async with running(hpa, factory=factory):
            await factory.wait_synced()
            hpa.enqueue(("default", "web"))
            await eventually(lambda: _desired(c, 4), what="memory scaled up")
            obj = await c.get("HorizontalPodAutoscaler", "web")
            assert obj.status.current_metrics[0].resource.name == "memory"
            assert obj.status.current_metrics[0].resource.current.average_utilization == 100
            assert (await c.get("ReplicaSet", "web")).spec.replicas == 4
    asyncio.run(asyncio.wait_for(body(), 30))
