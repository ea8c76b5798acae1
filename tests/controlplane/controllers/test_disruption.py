"""The disruption controller over FakeApiClient, and the arithmetic as pure functions."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.disruption import (DELETION_TIMEOUT, BudgetError, DisruptionController,
                                                 expected_and_desired, kept_disruptions)
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import apps_pb2, policy_pb2, types_pb2
from skiff.api import meta
from skiff.client import TooManyRequests
from skiff.controller import SharedInformerFactory


def _spec(**fields) -> policy_pb2.PodDisruptionBudgetSpec:
    spec = policy_pb2.PodDisruptionBudgetSpec(**fields)
    spec.selector.match_labels["app"] = "web"
    return spec


def _plain_pod(name: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    return p


@pytest.mark.parametrize("fields, pods, scale, expected, desired", [
    ({"min_available": "1"}, 3, 10, 3, 1),            # an integer: the pods there, the number asked
    ({"min_available": "50%"}, 2, 3, 3, 2),           # 1.5 rounded up, of the controllers' scale
    ({"min_available": "100%"}, 3, 3, 3, 3),
    ({"max_unavailable": "1"}, 3, 3, 3, 2),
    ({"max_unavailable": "50%"}, 3, 3, 3, 1),         # 50 % of 3 unavailable is 2 (rounded up)
    ({"max_unavailable": "10%"}, 10, 10, 10, 9),
    ({"max_unavailable": "5"}, 3, 3, 3, 0),           # never below 0
])
def test_expected_and_desired_as_kubernetes_rounds(fields, pods, scale, expected, desired):
    got = expected_and_desired(_spec(**fields), [_plain_pod(f"p{i}") for i in range(pods)],
                               lambda pod: ("rs-uid", scale))
    assert got == (expected, desired)


def test_a_pod_without_a_scaled_controller_fails_a_percentage_budget():
    def no_controller(pod):
        raise BudgetError(f'found no controller ref for pod "{pod.metadata.name}"', reason="NoControllerRef")
    with pytest.raises(BudgetError):
        expected_and_desired(_spec(max_unavailable="1"), [_plain_pod("a")], no_controller)
    assert expected_and_desired(_spec(min_available="1"), [_plain_pod("a")], no_controller) == (1, 1)


def test_disrupted_pods_are_kept_until_they_go_or_time_out():
    status = policy_pb2.PodDisruptionBudgetStatus()
    for name in ("going", "gone", "staying", "stale"):
        status.disrupted_pods[name].CopyFrom(meta.timestamp(1000.0 if name != "stale" else 800.0))
    going, staying, stale = _plain_pod("going"), _plain_pod("staying"), _plain_pod("stale")
    going.metadata.deletion_timestamp.CopyFrom(meta.timestamp(1001.0))
    kept, recheck = kept_disruptions(status, [going, staying, stale], now=1010.0)
    assert list(kept) == ["staying"]
    assert recheck == pytest.approx(1000.0 + DELETION_TIMEOUT - 1010.0)


# ---------------------------------------------------------------- over FakeApiClient

async def _deployment(c: FakeApiClient, name: str, replicas: int, *, ready: int) -> list[types_pb2.Pod]:
    """A Deployment, its ReplicaSet and `replicas` pods (the first `ready` Ready), owned as the controllers own them."""
    d = apps_pb2.Deployment()
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="c", image="busybox")
    d = await c.create(d)
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = f"{name}-abc"
    rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment", name=name, uid=d.metadata.uid,
                                     controller=True)
    rs.spec.replicas = replicas
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.template.CopyFrom(d.spec.template)
    rs = await c.create(rs)
    pods = []
    for i in range(replicas):
        p = types_pb2.Pod()
        p.metadata.name = f"{name}-abc-{i}"
        p.metadata.labels["app"] = "web"
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=rs.metadata.name,
                                         uid=rs.metadata.uid, controller=True)
        p.spec.containers.add(name="c", image="busybox")
        p = await c.create(p)
        if i < ready:
            p.status.phase = "Running"
            meta.set_condition(p.status.conditions, type_="Ready", status="True")
            p = await c.update_status(p)
        pods.append(p)
    return pods


async def _budget(c: FakeApiClient, **fields) -> None:
    b = policy_pb2.PodDisruptionBudget(spec=_spec(**fields))
    b.metadata.name = "web-pdb"
    await c.create(b)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def record(self, obj, *, type_, reason, message):
        self.events.append((type_, reason, message))


def _run(body):
    asyncio.run(asyncio.wait_for(body(), 30))


def test_status_from_a_deployment_and_the_condition():
    async def body():
        c = FakeApiClient()
        await _deployment(c, "web", 2, ready=2)
        await _budget(c, min_available="1")
        factory = SharedInformerFactory(c)
        controller = DisruptionController(client=c, factory=factory)

        async def status():
            s = (await c.get("PodDisruptionBudget", "web-pdb")).status
            return s if s.observed_generation == 1 else None

        async with running(controller, factory=factory):
            s = await eventually(status, what="status written")
            assert (s.current_healthy, s.desired_healthy, s.expected_pods, s.disruptions_allowed) == (2, 1, 2, 1)
            cond = meta.get_condition(s.conditions, "DisruptionAllowed")
            assert (cond.status, cond.reason) == ("True", "SufficientPods")
    _run(body)


def test_a_percentage_counts_the_scale_not_the_pods_there():
    async def body():
        c = FakeApiClient()
        await _deployment(c, "web", 3, ready=2)   # one pod not ready yet
        await _budget(c, max_unavailable="50%")
        factory = SharedInformerFactory(c)
        async with running(DisruptionController(client=c, factory=factory), factory=factory):
            async def status():
                s = (await c.get("PodDisruptionBudget", "web-pdb")).status
                return s if s.expected_pods == 3 else None
            s = await eventually(status, what="status written")
            assert (s.current_healthy, s.desired_healthy, s.disruptions_allowed) == (2, 1, 1)
    _run(body)


def test_evictions_spend_the_budget_until_the_controller_recounts():
    async def body():
        c = FakeApiClient()
        pods = await _deployment(c, "web", 3, ready=3)
        await _budget(c, min_available="2")
        factory = SharedInformerFactory(c)
        async with running(DisruptionController(client=c, factory=factory), factory=factory):
            async def allowed(n, healthy):
                s = (await c.get("PodDisruptionBudget", "web-pdb")).status
                return s.observed_generation == 1 and (s.disruptions_allowed, s.current_healthy) == (n, healthy) and s
            await eventually(lambda: allowed(1, 3), what="one disruption allowed")
            await c.evict(pods[0].metadata.name)   # unbound: deleted at once
            with pytest.raises(TooManyRequests) as refused:
                await c.evict(pods[1].metadata.name)
            assert str(refused.value) == "Cannot evict pod as it would violate the pod's disruption budget."
            s = await eventually(lambda: allowed(0, 2), what="recounted")
            assert s.desired_healthy == 2
            assert not s.disrupted_pods   # the evicted pod was seen going
            cond = meta.get_condition(s.conditions, "DisruptionAllowed")
            assert (cond.status, cond.reason) == ("False", "InsufficientPods")
            assert len((await c.list("Pod"))[0]) == 2
    _run(body)


def test_an_unmanaged_pod_makes_a_percentage_budget_fail_safe():
    async def body():
        c = FakeApiClient()
        p = types_pb2.Pod()
        p.metadata.name = "lonely"
        p.metadata.labels["app"] = "web"
        p.spec.containers.add(name="c", image="busybox")
        await c.create(p)
        await _budget(c, max_unavailable="1")
        factory = SharedInformerFactory(c)
        recorder = _Recorder()
        async with running(DisruptionController(client=c, factory=factory, recorder=recorder), factory=factory):
            async def failed():
                s = (await c.get("PodDisruptionBudget", "web-pdb")).status
                cond = meta.get_condition(s.conditions, "DisruptionAllowed")
                return cond is not None and cond
            cond = await eventually(failed, what="condition written")
            assert (cond.status, cond.reason) == ("False", "SyncFailed")
            assert recorder.events == [("Warning", "NoControllerRef", 'found no controller ref for pod "lonely"')]
    _run(body)
