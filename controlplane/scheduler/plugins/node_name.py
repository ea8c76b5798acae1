"""NodeName: a pod that names its node (spec.nodeName) fits only that node."""
from __future__ import annotations

from controlplane.scheduler.framework import SKIP, NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) didn't match the requested node name"


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return not pod.spec.node_name or pod.spec.node_name == node.metadata.name


@register("NodeName")
class NodeName:
    def pre_filter(self, pod: types_pb2.Pod, snapshot: object) -> Status | None:
        return None if pod.spec.node_name else SKIP

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return Status.success() if fits(pod, node.node) else Status.unresolvable(REASON)
