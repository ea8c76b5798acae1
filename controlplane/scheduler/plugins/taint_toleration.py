"""TaintToleration: a pod goes only to nodes whose NoSchedule and NoExecute
taints it tolerates (Kubernetes' ToleratesTaint: operator Exists matches any
value, and an empty key with Exists every taint; Equal matches the value; an
empty effect matches every effect)."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REPELLING = ("NoSchedule", "NoExecute")


def tolerates(toleration: types_pb2.Toleration, taint: types_pb2.Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("", "Equal"):
        return bool(toleration.key) and toleration.value == taint.value
    return False


def untolerated(pod: types_pb2.Pod, node: types_pb2.Node) -> types_pb2.Taint | None:
    for taint in node.spec.taints:
        if taint.effect in REPELLING and not any(tolerates(t, taint) for t in pod.spec.tolerations):
            return taint
    return None


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return untolerated(pod, node) is None


@register("TaintToleration")
class TaintToleration:
    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        taint = untolerated(pod, node.node)
        if taint is None:
            return Status.success()
        shown = f"{taint.key}: {taint.value}" if taint.value else taint.key
        return Status.unschedulable(f"node(s) had untolerated taint {{{shown}}}")
