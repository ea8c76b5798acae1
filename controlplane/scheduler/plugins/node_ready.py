"""NodeReady: only nodes whose Ready condition is True take pods (Kubernetes
does this with a not-ready taint; Skiff has no taints yet)."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) were not ready"
_SUCCESS = Status.success()
_NOT_READY = Status.unresolvable(REASON)


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


@register("NodeReady")
class NodeReady:
    passes_plain_nodes = True

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return _SUCCESS if node.ready else _NOT_READY
