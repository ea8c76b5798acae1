"""NodeSelector: every spec.nodeSelector label must be on the node, equal."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) didn't match Pod's node affinity/selector"


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    labels = node.metadata.labels
    return all(labels.get(k) == v for k, v in pod.spec.node_selector.items())


@register("NodeSelector")
class NodeSelector:
    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return Status.success() if fits(pod, node.node) else Status.unresolvable(REASON)
