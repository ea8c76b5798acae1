"""NodeResourcesFit: the pod's requests (limits where requests are absent)
fit in the node's allocatable minus what its pods already request; and the
node's pod count is below its "pods" allocatable. Its score is the
LeastAllocated strategy (least_allocated.py), Kubernetes' default.
Not fitting is Unschedulable: removing pods (preemption) may help."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, pod_requests, register
from controlplane.scheduler.plugins import least_allocated
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError

_SUCCESS = Status.success()


def insufficient(pod: types_pb2.Pod, node: NodeInfo) -> tuple[str, ...]:
    """The reasons the pod does not fit, Kubernetes' wording ("Insufficient memory")."""
    want = pod_requests(pod)
    have = node.allocatable
    reasons = []
    if len(node.pods) + 1 > node.allocatable_pods:
        reasons.append("Too many pods")
    if want.cpu_millis and node.requested.cpu_millis + want.cpu_millis > have.cpu_millis:
        reasons.append("Insufficient cpu")
    if want.memory_bytes and node.requested.memory_bytes + want.memory_bytes > have.memory_bytes:
        reasons.append("Insufficient memory")
    return tuple(reasons)


def fits(pod: types_pb2.Pod, node: NodeInfo) -> bool:
    return not insufficient(pod, node)


@register("NodeResourcesFit")
class NodeResourcesFit:
    _want: tuple[int, int] | Status | None = None   # the pod's (cpu, memory) requests, once per cycle

    def pre_filter(self, pod: types_pb2.Pod, snapshot: object) -> None:
        try:
            want = pod_requests(pod)
            self._want = (want.cpu_millis, want.memory_bytes)
        except QuantityError as exc:
            self._want = Status.error(f"bad resource quantity: {exc}")   # every node's answer, as before

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        if self._want is None:
            self.pre_filter(pod, None)
        want = self._want
        if isinstance(want, Status):
            return want
        # insufficient(), inlined: this runs once per node per cycle.
        cpu, memory = want
        slots, cpu_free, memory_free = node.free
        if slots > 0 and (not cpu or cpu <= cpu_free) and (not memory or memory <= memory_free):
            return _SUCCESS
        return Status.unschedulable(*insufficient(pod, node))

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return least_allocated.score(pod, node)

    def score_nodes(self, pod: types_pb2.Pod, feasible: list[NodeInfo]) -> dict[str, int]:
        return least_allocated.score_nodes(pod, feasible)
