"""Filter and score plugins as pure functions, and the pure schedule() decision."""
from controlplane.scheduler import plugins  # noqa: F401 - registers the plugins
from controlplane.scheduler.framework import NodeInfo, Resources, pod_requests, unschedulable_message
from controlplane.scheduler.plugins import (least_allocated, node_name, node_ready, node_resources_fit,
                                            node_selector, node_unschedulable)
from controlplane.scheduler.scheduler import schedule
from proto.skiff.v1 import types_pb2


def node(name: str, *, cpu: str = "2", memory: str = "4Gi", ready: bool = True, pods: str = "110",
         labels: dict | None = None, unschedulable: bool = False) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update(labels or {})
    n.spec.unschedulable = unschedulable
    n.status.allocatable.update({"cpu": cpu, "memory": memory, "pods": pods})
    n.status.conditions.add(type="Ready", status="True" if ready else "False")
    return n


def pod(name: str = "p", *, requests: dict | None = None, limits: dict | None = None,
        node_selector: dict | None = None, node_name: str = "") -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    c = p.spec.containers.add(name="c", image="busybox")
    c.resources.requests.update(requests or {})
    c.resources.limits.update(limits or {})
    p.spec.node_selector.update(node_selector or {})
    p.spec.node_name = node_name
    return p


def test_requests_default_to_limits_and_sum_over_containers():
    p = pod(requests={"cpu": "250m"}, limits={"cpu": "1", "memory": "128Mi"})
    p.spec.containers.add(name="d", image="x").resources.requests["memory"] = "64Mi"
    assert pod_requests(p) == Resources(cpu_millis=250, memory_bytes=192 * 2**20)


def test_node_resources_fit_counts_pods_already_there():
    big = pod(requests={"memory": "3Gi"})
    empty = NodeInfo.build(node("n"), [])
    assert node_resources_fit.fits(big, empty)
    busy = NodeInfo.build(node("n"), [pod("other", requests={"memory": "2Gi"})])
    assert node_resources_fit.insufficient(big, busy) == ("Insufficient memory",)
    greedy = pod(requests={"cpu": "3", "memory": "8Gi"})
    assert node_resources_fit.insufficient(greedy, empty) == ("Insufficient cpu", "Insufficient memory")
    full = NodeInfo.build(node("n", pods="1"), [pod("other")])
    assert node_resources_fit.insufficient(pod(), full) == ("Too many pods",)


def test_simple_filters():
    assert node_ready.fits(pod(), node("n"))
    assert not node_ready.fits(pod(), node("n", ready=False))
    assert not node_unschedulable.fits(pod(), node("n", unschedulable=True))
    assert node_selector.fits(pod(node_selector={"disk": "ssd"}), node("n", labels={"disk": "ssd", "x": "y"}))
    assert not node_selector.fits(pod(node_selector={"disk": "ssd"}), node("n", labels={"disk": "hdd"}))
    assert node_name.fits(pod(node_name="a"), node("a"))
    assert not node_name.fits(pod(node_name="a"), node("b"))


def test_least_allocated_prefers_the_emptier_node():
    p = pod(requests={"cpu": "500m", "memory": "512Mi"})
    empty = NodeInfo.build(node("a"), [])
    busy = NodeInfo.build(node("b"), [pod("x", requests={"cpu": "1", "memory": "2Gi"})])
    assert least_allocated.score(p, empty) > least_allocated.score(p, busy)
    assert schedule(p, [busy, empty]).node_name == "a"


def test_schedule_explains_why_nothing_fits():
    p = pod(requests={"memory": "8Gi"})
    decision = schedule(p, [NodeInfo.build(node("a"), []), NodeInfo.build(node("b", ready=False), []),
                            NodeInfo.build(node("c", memory="1Gi"), [])])
    assert decision.node_name is None
    # Kubernetes sorts the "count reason" strings as text.
    assert decision.message == "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient memory."


def test_unschedulable_message_is_kubernetes_style():
    assert unschedulable_message(1, {"a": ("Insufficient memory",)}) == \
        "0/1 nodes are available: 1 Insufficient memory."
