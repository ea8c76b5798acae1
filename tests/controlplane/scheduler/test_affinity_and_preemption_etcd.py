"""On a real control plane (etcd, `python -m controlplane.main`) with three Node
objects and a stand-in kubelet: pod anti-affinity spreads replicas one per
node and reports the fourth as Kubernetes does; a high-priority pod preempts
a low-priority one (DisruptionTarget, Preempted event, nominatedNodeName) and
is bound where its victim was."""
from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from proto.skiff.v1 import scheduling_pb2, types_pb2
from skiff.api import meta
from skiff.client import ApiClient, NotFound
from tests.controlplane.scheduler.test_scheduler import eventually
from tests.fake_kubelet import kubelet

pytestmark = pytest.mark.etcd
NODES = ("node-a", "node-b", "node-c")


def node(name: str) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update({"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": f"zone-{name[-1]}"})
    n.status.allocatable.update({"cpu": "2", "memory": "4Gi", "pods": "110"})
    meta.set_condition(n.status.conditions, type_="Ready", status="True", reason="AgentReady", heartbeat=True)
    return n


def web(name: str, *, cpu: str = "100m") -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels["app"] = "web"
    p.spec.containers.add(name="c", image="busybox").resources.requests["cpu"] = cpu
    term = p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add(
        topology_key="kubernetes.io/hostname")
    term.label_selector.match_labels["app"] = "web"
    return p


@contextlib.contextmanager
def finishing_deletions(server: str):
    """What a kubelet does with a pod marked for deletion: stops it and removes it (grace 0)."""
    stop = threading.Event()

    async def loop():
        async with ApiClient(server) as c:
            while not stop.is_set():
                pods, _ = await c.list("Pod", "default")
                for pod in pods:
                    if pod.metadata.HasField("deletion_timestamp"):
                        with contextlib.suppress(NotFound):
                            await c.delete("Pod", pod.metadata.name, grace_period_seconds=0)
                await asyncio.sleep(0.1)

    thread = threading.Thread(target=asyncio.run, args=(loop(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


async def scheduled_to(c: ApiClient, name: str) -> str | None:
    p = await c.get("Pod", name)
    return p.spec.node_name or None


async def pending_message(c: ApiClient, name: str) -> str | None:
    p = await c.get("Pod", name)
    cond = meta.get_condition(p.status.conditions, "PodScheduled")
    return cond.message if cond is not None and cond.status == "False" and cond.message.startswith("0/3") else None


async def anti_affinity_then_preemption(c: ApiClient) -> None:
    for name in NODES:
        await c.create(node(name))
    for i in range(3):
        await c.create(web(f"web-{i}", cpu="1500m"))
    placed = [await eventually(lambda i=i: scheduled_to(c, f"web-{i}"), what=f"web-{i} bound") for i in range(3)]
    assert sorted(placed) == list(NODES)     # one per node: the anti-affinity spread them

    await c.create(web("web-3"))
    message = await eventually(lambda: pending_message(c, "web-3"), what="web-3 reported unschedulable")
    assert message == ("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: "
                       "0/3 nodes are available: 3 No preemption victims found for incoming pod.")

    async def failed_scheduling():   # events are recorded after the condition, as Kubernetes' recorder does
        events, _ = await c.list("Event", "default")
        return [e.message for e in events if e.involved_object.name == "web-3" and e.reason == "FailedScheduling"] or None
    assert message in await eventually(failed_scheduling, what="web-3's FailedScheduling event")
    await c.delete("Pod", "web-3", grace_period_seconds=0)

    # A class above the web pods' 0: the urgent pod fits nowhere (1.5 of 2 CPUs taken on each node),
    # so the scheduler evicts the web pod of one node and nominates the pod there.
    high = scheduling_pb2.PriorityClass(value=1000, description="urgent work")
    high.metadata.name = "high"
    await c.create(high)
    urgent = types_pb2.Pod()
    urgent.metadata.name = "urgent"
    urgent.spec.priority_class_name = "high"
    urgent.spec.containers.add(name="c", image="busybox").resources.requests["cpu"] = "1"
    created = await c.create(urgent)
    assert created.spec.priority == 1000 and created.spec.preemption_policy == "PreemptLowerPriority"

    async def nominated():
        p = await c.get("Pod", "urgent")
        return p.status.nominated_node_name or p.spec.node_name or None
    target = await eventually(nominated, what="urgent nominated (or bound)")
    victim = f"web-{placed.index(target)}"

    async def preempted_event():
        events, _ = await c.list("Event", "default")
        return [e for e in events if e.involved_object.name == victim and e.reason == "Preempted"] or None
    (event,) = await eventually(preempted_event, what=f"the Preempted event of {victim}")
    assert event.message == f"Preempted by pod {created.metadata.uid} on node {target}"
    assert await eventually(lambda: scheduled_to(c, "urgent"), what="urgent bound") == target
    with pytest.raises(NotFound):
        await c.get("Pod", victim)
    others = sorted(p.metadata.name for p in (await c.list("Pod", "default"))[0])
    assert others == sorted({"web-0", "web-1", "web-2", "urgent"} - {victim})   # only the victim went


def test_anti_affinity_spreads_and_a_higher_priority_pod_preempts(controlplane_factory):
    info = controlplane_factory("--node-monitor-grace-period", "3600")   # Node objects without an agent stay Ready

    async def main():
        async with ApiClient(info.address) as c:
            await asyncio.wait_for(anti_affinity_then_preemption(c), 90)
    with kubelet(info.address), finishing_deletions(info.address):
        try:
            asyncio.run(main())
        except AssertionError as exc:   # what the scheduler said meanwhile, with the failure
            lines = [line for line in info.log.read_text(errors="replace").splitlines() if "grpc._cython" not in line]
            tail = "\n".join(lines[-120:])
            raise AssertionError(f"{exc}\n--- control plane log (tail) ---\n{tail}") from None
