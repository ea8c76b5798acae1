"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) were unschedulable"


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return not node.spec.unschedulable


@register("NodeUnschedulable")
class NodeUnschedulable:
    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return Status.success() if fits(pod, node.node) else Status.unresolvable(REASON)
