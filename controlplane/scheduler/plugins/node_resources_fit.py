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
    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        try:
            reasons = insufficient(pod, node)
        except QuantityError as exc:
            return Status.error(f"bad resource quantity: {exc}")
        return Status.unschedulable(*reasons) if reasons else Status.success()

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return least_allocated.score(pod, node)
