"""TaintToleration: a pod goes only to nodes whose NoSchedule and NoExecute
taints it tolerates (Kubernetes' ToleratesTaint: operator Exists matches any
value, and an empty key with Exists every taint; Equal matches the value; an
empty effect matches every effect). An untolerated taint is Unresolvable
(removing pods never helps). The score prefers nodes with fewer
PreferNoSchedule taints the pod does not tolerate (reversed: fewest is 100)."""
from __future__ import annotations

from controlplane.scheduler.framework import NodeInfo, Status, default_normalize, register
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


def intolerable_prefer_no_schedule(pod: types_pb2.Pod, node: types_pb2.Node) -> int:
    """How many PreferNoSchedule taints of `node` no toleration (effect empty or PreferNoSchedule) covers."""
    tolerations = [t for t in pod.spec.tolerations if t.effect in ("", "PreferNoSchedule")]
    return sum(1 for taint in node.spec.taints
               if taint.effect == "PreferNoSchedule" and not any(tolerates(t, taint) for t in tolerations))


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return untolerated(pod, node) is None


@register("TaintToleration")
class TaintToleration:
    passes_plain_nodes = True

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        if not node.taints:
            return Status.success()
        taint = untolerated(pod, node.node)
        if taint is None:
            return Status.success()
        return Status.unresolvable(f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")

    def pre_score(self, pod: types_pb2.Pod, snapshot: object, feasible: list[NodeInfo]) -> bool:
        """No feasible node tainted: each would score 100 - the same for all, which cannot change
        the ranking - so the score is skipped (most clusters' case: no cost per node)."""
        return any(info.taints for info in feasible)

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        return intolerable_prefer_no_schedule(pod, node.node)

    def score_nodes(self, pod: types_pb2.Pod, feasible: list[NodeInfo]) -> dict[str, int]:
        return {info.name: intolerable_prefer_no_schedule(pod, info.node) if info.taints else 0 for info in feasible}

    def normalize(self, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
