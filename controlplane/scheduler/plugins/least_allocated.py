"""LeastAllocated: prefer the node with the most CPU and memory left after
placing the pod (spreads load), 0-100, CPU and memory weighted equally."""
from __future__ import annotations

from controlplane.scheduler.framework import MAX_SCORE, NodeInfo, pod_requests, register
from proto.skiff.v1 import types_pb2


def _free_fraction(requested: int, capacity: int) -> float:
    if capacity <= 0:
        return 0.0
    return max(0.0, (capacity - requested) / capacity)


def score(pod: types_pb2.Pod, node: NodeInfo) -> int:
    want = pod_requests(pod)
    have = node.allocatable
    cpu = _free_fraction(node.requested.cpu_millis + want.cpu_millis, have.cpu_millis)
    memory = _free_fraction(node.requested.memory_bytes + want.memory_bytes, have.memory_bytes)
    return int(MAX_SCORE * (cpu + memory) / 2)


@register("LeastAllocated")
class LeastAllocated:
    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return score(pod, node)
