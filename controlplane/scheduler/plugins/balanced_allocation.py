"""NodeResourcesBalancedAllocation: prefer the node whose CPU and memory
would be used in the most equal fractions after placing the pod (so neither
is stranded): 100 × (1 - the standard deviation of the fractions), each
fraction requested / allocatable capped at 1, with the pods' own requests
(Kubernetes' useRequested). A resource the node reports none of is left out."""
from __future__ import annotations

import math

from controlplane.scheduler.framework import MAX_SCORE, NodeInfo, pod_requests, register
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError


def fractions(pod: types_pb2.Pod, node: NodeInfo) -> list[float]:
    want = pod_requests(pod)
    have = node.allocatable
    out = []
    for requested, capacity in ((node.requested.cpu_millis + want.cpu_millis, have.cpu_millis),
                                (node.requested.memory_bytes + want.memory_bytes, have.memory_bytes)):
        if capacity > 0:
            out.append(min(requested / capacity, 1.0))
    return out


def score(pod: types_pb2.Pod, node: NodeInfo) -> int:
    try:
        values = fractions(pod, node)
    except QuantityError:
        return 0
    if len(values) == 2:
        std = abs(values[0] - values[1]) / 2   # Kubernetes' shortcut for two resources
    elif values:
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    else:
        std = 0.0
    return int((1 - std) * MAX_SCORE)


@register("NodeResourcesBalancedAllocation")
class BalancedAllocation:
    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return score(pod, node)

    def score_nodes(self, pod: types_pb2.Pod, feasible: list[NodeInfo]) -> dict[str, int]:
        """score() over many nodes; the usual two-resource case inlined, anything else through score()."""
        try:
            want = pod_requests(pod)
        except QuantityError:
            return {info.name: 0 for info in feasible}
        cpu_want, mem_want = want.cpu_millis, want.memory_bytes
        out = {}
        for info in feasible:
            cpu_cap, mem_cap, cpu_used, mem_used, _, _ = info.resource_view
            if cpu_cap > 0 and mem_cap > 0:
                cpu = (cpu_used + cpu_want) / cpu_cap
                memory = (mem_used + mem_want) / mem_cap
                if cpu > 1.0:
                    cpu = 1.0
                if memory > 1.0:
                    memory = 1.0
                out[info.name] = int((1 - abs(cpu - memory) / 2) * MAX_SCORE)
            else:
                out[info.name] = score(pod, info)
        return out
