"""The scheduler: binds what fits, leaves the rest Pending with Kubernetes'
message, and retries when a node appears - over FakeApiClient (no etcd) and,
once, in a real control plane on real etcd."""
import asyncio

import pytest

from controlplane.metrics import Metrics
from controlplane.scheduler.scheduler import Scheduler
from controlplane.testing import FakeApiClient, running
from proto.skiff.v1 import policy_pb2, scheduling_pb2, types_pb2
from skiff.api import meta
from skiff.client import ApiClient
from skiff.controller import SharedInformerFactory


def node(name: str, memory: str) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.status.capacity.update({"cpu": "2", "memory": memory, "pods": "110"})
    n.status.allocatable.update({"cpu": "2", "memory": memory, "pods": "110"})
    meta.set_condition(n.status.conditions, type_="Ready", status="True", reason="AgentReady", heartbeat=True)
    return n


def pod(name: str, memory: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.spec.containers.add(name="c", image="busybox").resources.requests["memory"] = memory
    return p


async def eventually(check, *, what: str, timeout: float = 20.0):
    """Poll `check` (async, returns a value or None) until it gives a value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def with_scheduler(body) -> None:
    """Run body(client) against FakeApiClient with a Scheduler working on it."""
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        async with running(Scheduler(client=c, factory=factory, metrics=Metrics()), factory=factory):
            await asyncio.wait_for(body(c), 60)
    asyncio.run(main())


async def too_big_stays_pending_fitting_one_is_bound(c) -> None:
    await c.create(node("node-1", "1Gi"))  # as an agent registers: status included

    await c.create(pod("big", "2Gi"))
    await c.create(pod("small", "512Mi"))

    async def small_bound():
        p = await c.get("Pod", "small")
        return p if p.spec.node_name else None
    small = await eventually(small_bound, what="pod small to be bound")
    assert small.spec.node_name == "node-1"
    assert meta.get_condition(small.status.conditions, "PodScheduled").status == "True"

    async def big_marked():
        p = await c.get("Pod", "big")
        cond = meta.get_condition(p.status.conditions, "PodScheduled")
        # (Until the scheduler has seen node-1 it may say "0/0 nodes"; wait for its verdict on node-1.)
        return p if cond is not None and cond.status == "False" and cond.message.startswith("0/1") else None
    big = await eventually(big_marked, what="pod big to get PodScheduled=False about node-1")
    cond = meta.get_condition(big.status.conditions, "PodScheduled")
    assert big.spec.node_name == "" and big.status.phase == "Pending"
    assert cond.reason == "Unschedulable"
    assert cond.message == ("0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
                            "1 No preemption victims found for incoming pod.")

    # A second node with room: the parked pod is retried and bound there.
    await c.create(node("node-2", "4Gi"))

    async def big_bound():
        p = await c.get("Pod", "big")
        return p if p.spec.node_name else None
    assert (await eventually(big_bound, what="pod big to be bound")).spec.node_name == "node-2"

    # What `describe pod big` shows: why it waited, then where it went.
    async def scheduled_event():   # recorded after the binding (binding is asynchronous to the cycle)
        events, _ = await c.list("Event", namespace="default")
        about = [(e.reason, e.message) for e in events if e.involved_object.name == "big"]
        return about if ("Scheduled", "Successfully assigned default/big to node-2") in about else None
    about_big = await eventually(scheduled_event, what="the Scheduled event of big")
    assert ("FailedScheduling", cond.message) in about_big


def test_too_big_pod_stays_pending_fitting_one_is_bound():
    with_scheduler(too_big_stays_pending_fitting_one_is_bound)


@pytest.mark.etcd
def test_too_big_pod_stays_pending_fitting_one_is_bound_in_a_real_control_plane(controlplane):
    async def main():
        async with ApiClient(controlplane) as c:
            await asyncio.wait_for(too_big_stays_pending_fitting_one_is_bound(c), 60)
    asyncio.run(main())


def test_pods_scheduled_back_to_back_do_not_overcommit():
    async def body(c):
        await c.create(node("node-1", "1Gi"))
        for i in range(4):
            await c.create(pod(f"p{i}", "400Mi"))

        async def settled():
            items, _ = await c.list("Pod")
            done = [p for p in items if p.spec.node_name or
                    (meta.get_condition(p.status.conditions, "PodScheduled") or types_pb2.PodCondition()).status
                    == "False"]
            return items if len(done) == 4 else None
        items = await eventually(settled, what="all four pods to be decided")
        assert sum(1 for p in items if p.spec.node_name == "node-1") == 2  # 2 x 400Mi fit in 1Gi, 3 do not
    with_scheduler(body)


def test_a_finished_pod_frees_its_room():
    async def body(c):
        await c.create(node("node-1", "1Gi"))
        done = pod("done", "800Mi")
        done.spec.node_name = "node-1"
        done = await c.create(done)
        await c.create(pod("waiting", "800Mi"))

        async def parked():
            p = await c.get("Pod", "waiting")
            cond = meta.get_condition(p.status.conditions, "PodScheduled")
            return p if cond is not None and cond.message.startswith("0/1 nodes are available: 1 Insufficient") else None
        await eventually(parked, what="pod waiting to be refused for memory")

        done.status.phase = "Succeeded"   # its containers exited: its requests no longer count
        await c.update_status(done)

        async def bound():
            p = await c.get("Pod", "waiting")
            return p if p.spec.node_name else None
        assert (await eventually(bound, what="pod waiting to be bound")).spec.node_name == "node-1"
    with_scheduler(body)


# ---------------------------------------------------------------- preemption through the scheduler's loop

def cpu_node(name: str) -> types_pb2.Node:
    n = node(name, "4Gi")
    n.status.allocatable["cpu"] = n.status.capacity["cpu"] = "1"
    return n


def bound_pod(name: str, node_name: str, **labels: str) -> types_pb2.Pod:
    p = pod(name, "64Mi")
    p.spec.containers[0].resources.requests["cpu"] = "1"
    p.metadata.labels.update(labels)
    p.spec.node_name = node_name
    return p


async def create_class(c, name: str, value: int, policy: str = "PreemptLowerPriority") -> None:
    pc = scheduling_pb2.PriorityClass(value=value, preemption_policy=policy)
    pc.metadata.name = name
    await c.create(pc)


async def urgent_pod(c, class_name: str):
    p = pod("urgent", "64Mi")
    p.spec.containers[0].resources.requests["cpu"] = "1"
    p.spec.priority_class_name = class_name
    return await c.create(p)


def test_preemption_spares_the_pods_a_disruption_budget_protects():
    async def body(c):
        await c.create(cpu_node("node-a"))
        await c.create(cpu_node("node-b"))
        await c.create(bound_pod("db", "node-a", app="db"))
        await c.create(bound_pod("batch", "node-b", app="batch"))
        pdb = policy_pb2.PodDisruptionBudget()
        pdb.metadata.name = "db"
        pdb.spec.min_available = "1"
        pdb.spec.selector.match_labels["app"] = "db"
        await c.create(pdb)       # no disruption controller here: disruptionsAllowed stays 0
        await create_class(c, "high", 1000)
        await urgent_pod(c, "high")

        async def nominated():
            p = await c.get("Pod", "urgent")
            return p.status.nominated_node_name or None
        assert await eventually(nominated, what="urgent nominated") == "node-b"

        async def batch_marked():
            p = await c.get("Pod", "batch")
            return p if p.metadata.HasField("deletion_timestamp") else None
        batch = await eventually(batch_marked, what="batch marked for deletion")
        cond = meta.get_condition(batch.status.conditions, "DisruptionTarget")
        assert (cond.status, cond.reason) == ("True", "PreemptionByScheduler")
        db = await c.get("Pod", "db")
        assert not db.metadata.HasField("deletion_timestamp")
    with_scheduler(body)


def test_preemption_policy_never_waits_without_evicting():
    async def body(c):
        await c.create(cpu_node("node-a"))
        await c.create(bound_pod("batch", "node-a"))
        await create_class(c, "polite", 1000, policy="Never")
        created = await urgent_pod(c, "polite")
        assert created.spec.preemption_policy == "Never"

        async def reported():
            p = await c.get("Pod", "urgent")
            cond = meta.get_condition(p.status.conditions, "PodScheduled")
            return cond.message if cond is not None and cond.message.startswith("0/1") else None
        assert await eventually(reported, what="urgent reported") == (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
        batch = await c.get("Pod", "batch")
        assert not batch.metadata.HasField("deletion_timestamp")
    with_scheduler(body)


def test_a_bind_that_meets_a_conflict_is_tried_again():
    """A pod changed while it was being bound (a status write racing the bind): the
    bind's Conflict puts it back in the queue; the update that caused it may have
    come while the pod was assumed, so no later event is waited for."""
    from skiff.client import Conflict

    async def body(c):
        original, conflicts = c.bind, []

        async def bind_once_conflicting(name, node_name, namespace="default", **kw):
            if not conflicts:
                conflicts.append(name)
                raise Conflict(f'Operation cannot be fulfilled on pods "{name}": the object has been modified')
            return await original(name, node_name, namespace, **kw)
        c.bind = bind_once_conflicting
        await c.create(node("node-1", "1Gi"))
        await c.create(pod("p", "64Mi"))

        async def bound():
            p = await c.get("Pod", "p")
            return p.spec.node_name or None
        assert await eventually(bound, what="p bound after its first bind conflicted") == "node-1"
        assert conflicts == ["p"]
    with_scheduler(body)


def test_the_cache_counts_a_node_as_building_it_from_its_pods_would():
    """The scheduler keeps each node's summed requests and affinity pods pod by pod (adds, status
    writes, moves, a bad quantity, affinity coming and going, finishing, deletes); the NodeInfo it
    builds from them equals NodeInfo.build over the node's pods after every step."""
    import random

    from controlplane.scheduler.framework import NodeInfo

    nodes = {name: node(name, "8Gi") for name in ("n1", "n2", "n3")}

    class Nodes:
        def get(self, key):
            return nodes.get(key[1])

    rng = random.Random(17)
    sched = Scheduler(client=FakeApiClient(), factory=SharedInformerFactory(FakeApiClient()), metrics=Metrics())
    sched.nodes = Nodes()
    live: dict = {}
    for step in range(600):
        name = f"p{rng.randrange(40)}"
        key = ("default", name)
        if key in live and rng.random() < 0.15:
            sched._pod_deleted(key, live.pop(key))
        else:
            p = pod(name, rng.choice(["64Mi", "128Mi", "1Gi", "lots"]))   # "lots": not a quantity
            p.metadata.namespace = "default"
            p.spec.node_name = rng.choice(["", "n1", "n2", "n3"])
            if rng.random() < 0.3:
                p.spec.containers[0].resources.requests["cpu"] = rng.choice(["100m", "1", "2"])
            if rng.random() < 0.25:
                p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add(
                    topology_key="kubernetes.io/hostname")
            if rng.random() < 0.1:
                p.status.phase = "Succeeded"
            old = live.get(key)
            live[key] = p
            (sched._pod_added(key, p) if old is None else sched._pod_updated(key, old, p))
        for n in nodes:
            got = sched._node_info(n)
            want = NodeInfo.build(nodes[n], sched._on_node.get(n, {}).values())
            assert (got.pods, got.requested, got.non_zero_requested) == \
                (want.pods, want.requested, want.non_zero_requested), f"step {step}, node {n}"
            assert got.pods_with_affinity == want.pods_with_affinity, f"step {step}, node {n}"
    counted = {k for k, p in live.items() if p.spec.node_name and p.status.phase != "Succeeded"}
    assert counted == {k for pods in sched._on_node.values() for k in pods}
