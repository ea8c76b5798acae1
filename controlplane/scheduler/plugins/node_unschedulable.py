"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) were unschedulable"
_SUCCESS = Status.success()
_CORDONED = Status.unresolvable(REASON)


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return not node.spec.unschedulable


@register("NodeUnschedulable")
class NodeUnschedulable:
    passes_plain_nodes = True

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return _CORDONED if node.unschedulable else _SUCCESS
