"""kube-state-metrics' families from the informer caches, over FakeApiClient
(the real registry, no etcd): what a scrape of /metrics/kube-state-metrics
shows for pods, nodes, deployments and replicasets, parsed with
prometheus_client's own text parser."""
from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from controlplane.kubestate import KubeStateMetrics
from controlplane.testing import FakeApiClient, eventually
from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.controller import SharedInformerFactory


def _samples(kube_state: KubeStateMetrics) -> dict[str, dict[tuple, float]]:
    content_type, body = kube_state.render()
    assert content_type.startswith("text/plain")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _one(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    found = [v for k, v in samples.get(name, {}).items() if labels.items() <= dict(k).items()]
    assert len(found) == 1, f"{name}{labels}: {samples.get(name)}"
    return found[0]


def test_pod_node_deployment_families():
    async def body():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        kube_state = KubeStateMetrics(factory)
        node = types_pb2.Node()
        node.metadata.name = "n1"
        node = await c.create(node)
        node.status.allocatable.update({"cpu": "2", "memory": "1Gi", "pods": "110"})
        node.status.conditions.add(type="Ready", status="True")
        node.status.addresses.add(type="InternalIP", address="10.0.0.1")
        await c.update_status(node)

        pod = types_pb2.Pod()
        pod.metadata.name = "web"
        pod.spec.containers.add(name="main", image="busybox")
        pod.spec.containers[0].resources.requests.update({"cpu": "250m", "memory": "64Mi"})
        pod = await c.create(pod)
        await c.bind("web", "n1")
        pod = await c.get("Pod", "web")
        pod.status.phase = "Running"
        cs = pod.status.container_statuses.add(name="main", image="docker.io/library/busybox:latest",
                                                restart_count=4)
        cs.state.waiting.reason = "CrashLoopBackOff"
        cs.last_state.terminated.reason = "Error"
        await c.update_status(pod)

        d = apps_pb2.Deployment()
        d.metadata.name = "front"
        d.spec.replicas = 3
        d.spec.selector.match_labels["app"] = "front"
        d.spec.template.metadata.labels["app"] = "front"
        d.spec.template.spec.containers.add(name="c", image="busybox")
        d = await c.create(d)
        d.status.replicas, d.status.available_replicas, d.status.unavailable_replicas = 3, 1, 2
        await c.update_status(d)

        factory.start()
        try:
            await factory.wait_synced()

            def ready():
                s = _samples(kube_state)
                phase = s.get("kube_pod_status_phase", {})
                running = [v for k, v in phase.items() if dict(k).get("phase") == "Running"]
                avail = s.get("kube_deployment_status_replicas_available", {})
                return s if running == [1.0] and list(avail.values()) == [1.0] else None
            s = await eventually(ready, what="the caches hold the updated objects")
        finally:
            await factory.stop()
        return s, pod

    s, pod = asyncio.run(body())
    ids = dict(namespace="default", pod="web", uid=pod.metadata.uid)
    # One series per phase; the current one is 1.
    assert {dict(k)["phase"]: v for k, v in s["kube_pod_status_phase"].items()} == {
        "Pending": 0.0, "Running": 1.0, "Succeeded": 0.0, "Failed": 0.0, "Unknown": 0.0}
    assert _one(s, "kube_pod_info", **ids, node="n1", created_by_kind="<none>") == 1.0
    assert _one(s, "kube_pod_container_status_restarts_total", **ids, container="main") == 4.0
    assert _one(s, "kube_pod_container_status_waiting_reason", **ids, container="main",
                reason="CrashLoopBackOff") == 1.0
    assert _one(s, "kube_pod_container_status_last_terminated_reason", **ids, reason="Error") == 1.0
    assert _one(s, "kube_pod_container_resource_requests", **ids, resource="cpu", unit="core") == 0.25
    assert _one(s, "kube_pod_container_resource_requests", **ids, resource="memory",
                unit="byte") == 64 * 2**20
    # Nodes: a series per condition status; allocatable in kube-state-metrics' units.
    assert _one(s, "kube_node_status_condition", node="n1", condition="Ready", status="true") == 1.0
    assert _one(s, "kube_node_status_condition", node="n1", condition="Ready", status="false") == 0.0
    assert _one(s, "kube_node_status_allocatable", node="n1", resource="memory", unit="byte") == 2**30
    assert _one(s, "kube_node_status_allocatable", node="n1", resource="cpu", unit="core") == 2.0
    assert _one(s, "kube_node_info", node="n1", internal_ip="10.0.0.1") == 1.0
    # Deployments: what KubeDeploymentReplicasMismatch compares.
    assert _one(s, "kube_deployment_spec_replicas", namespace="default", deployment="front") == 3.0
    assert _one(s, "kube_deployment_status_replicas_available", namespace="default", deployment="front") == 1.0
    assert _one(s, "kube_deployment_status_replicas_unavailable", namespace="default", deployment="front") == 2.0


def test_nothing_before_the_caches_are_filled():
    """A follower (informers not running) renders no object series, not zeros."""
    kube_state = KubeStateMetrics(SharedInformerFactory(FakeApiClient()))
    assert _samples(kube_state) == {}


def test_daemonset_job_and_cronjob_families():
    from proto.skiff.v1 import batch_pb2

    async def body():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        kube_state = KubeStateMetrics(factory)
        ds = apps_pb2.DaemonSet()
        ds.metadata.name = "agent"
        ds.spec.selector.match_labels["app"] = "agent"
        ds.spec.template.metadata.labels["app"] = "agent"
        ds.spec.template.spec.containers.add(name="c", image="busybox")
        ds = await c.create(ds)
        ds.status.desired_number_scheduled, ds.status.number_ready, ds.status.number_unavailable = 3, 2, 1
        await c.update_status(ds)

        job = batch_pb2.Job()
        job.metadata.name = "nightly"
        job.spec.completions = 2
        job.spec.template.spec.restart_policy = "Never"
        job.spec.template.spec.containers.add(name="c", image="busybox")
        job = await c.create(job)
        job.status.failed = 7
        job.status.conditions.add(type="Failed", status="True", reason="BackoffLimitExceeded")
        await c.update_status(job)

        cj = batch_pb2.CronJob()
        cj.metadata.name = "hourly"
        cj.spec.schedule = "0 * * * *"
        cj.spec.job_template.spec.template.spec.restart_policy = "OnFailure"
        cj.spec.job_template.spec.template.spec.containers.add(name="c", image="busybox")
        await c.create(cj)

        factory.start()
        try:
            await factory.wait_synced()

            def ready():
                s = _samples(kube_state)
                ready_ds = list(s.get("kube_daemonset_status_number_ready", {}).values())
                failed = list(s.get("kube_job_status_failed", {}).values())
                return s if ready_ds == [2.0] and failed == [7.0] else None
            return await eventually(ready, what="the caches hold the updated objects")
        finally:
            await factory.stop()

    s = asyncio.run(body())
    ds_ids = dict(namespace="default", daemonset="agent")
    assert _one(s, "kube_daemonset_status_desired_number_scheduled", **ds_ids) == 3.0
    assert _one(s, "kube_daemonset_status_number_unavailable", **ds_ids) == 1.0
    job_ids = dict(namespace="default", job_name="nightly")
    assert _one(s, "kube_job_status_failed", **job_ids) == 7.0
    assert _one(s, "kube_job_spec_completions", **job_ids) == 2.0
    # What KubeJobFailed selects: kube_job_failed{condition="true"} > 0.
    assert _one(s, "kube_job_failed", **job_ids, condition="true") == 1.0
    assert _one(s, "kube_job_failed", **job_ids, condition="false") == 0.0
    assert _one(s, "kube_cronjob_info", namespace="default", cronjob="hourly", schedule="0 * * * *") == 1.0
    assert _one(s, "kube_cronjob_status_active", namespace="default", cronjob="hourly") == 0.0
