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


@register("LeastAllocated")
class LeastAllocated:
    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return score(pod, node)
