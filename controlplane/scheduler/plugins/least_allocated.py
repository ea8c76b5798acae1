"""LeastAllocated, NodeResourcesFit's default scoring strategy: prefer the
node with the most CPU and memory left after placing the pod (spreads load).
Per resource (capacity - requested) × 100 / capacity, with the pods' non-zero
requests (an absent request counts 100m / 200Mi), averaged over CPU and
memory with weight 1 each; integer arithmetic as Kubernetes'."""
from __future__ import annotations

from controlplane.scheduler.framework import MAX_SCORE, NodeInfo, pod_non_zero_requests, register
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError

WEIGHTS = (("cpu", 1), ("memory", 1))


def _least_requested(requested: int, capacity: int) -> int:
    if capacity <= 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_SCORE // capacity


def score(pod: types_pb2.Pod, node: NodeInfo) -> int:
    try:
        want = pod_non_zero_requests(pod)
    except QuantityError:
        return 0
    have = node.allocatable
    cpu = _least_requested(node.non_zero_requested.cpu_millis + want.cpu_millis, have.cpu_millis)
    memory = _least_requested(node.non_zero_requested.memory_bytes + want.memory_bytes, have.memory_bytes)
    return (cpu * WEIGHTS[0][1] + memory * WEIGHTS[1][1]) // sum(w for _, w in WEIGHTS)


def score_nodes(pod: types_pb2.Pod, feasible: list[NodeInfo]) -> dict[str, int]:
    """score() over many nodes: the pod's requests read once, the arithmetic inlined."""
    try:
        want = pod_non_zero_requests(pod)
    except QuantityError:
        return {info.name: 0 for info in feasible}
    cpu_want, mem_want = want.cpu_millis, want.memory_bytes
    (_, w_cpu), (_, w_mem) = WEIGHTS
    w_sum = w_cpu + w_mem
    out = {}
    for info in feasible:
        cpu_cap, mem_cap, _, _, cpu_used, mem_used = info.resource_view
        req = cpu_used + cpu_want
        cpu = 0 if cpu_cap <= 0 or req > cpu_cap else (cpu_cap - req) * MAX_SCORE // cpu_cap
        req = mem_used + mem_want
        memory = 0 if mem_cap <= 0 or req > mem_cap else (mem_cap - req) * MAX_SCORE // mem_cap
        out[info.name] = (cpu * w_cpu + memory * w_mem) // w_sum
    return out


@register("LeastAllocated")
class LeastAllocated:
    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return score(pod, node)

    def score_nodes(self, pod: types_pb2.Pod, feasible: list[NodeInfo]) -> dict[str, int]:
        return score_nodes(pod, feasible)
