"""NodeAffinity: a pod fits only nodes matching its spec.nodeSelector and its
required node affinity (any nodeSelectorTerm; within a term every
expression: In, NotIn, Exists, DoesNotExist, Gt, Lt on labels, In/NotIn on
the field metadata.name); it scores a node by the summed weights of the
preferred terms the node matches, scaled so the best node has 100.
The matching is skiff/api/nodeaffinity.py's, which the DaemonSet controller
shares. A node that does not match is Unresolvable: removing pods never helps."""
from __future__ import annotations

from controlplane.scheduler.framework import SKIP, NodeInfo, Status, default_normalize, register
from proto.skiff.v1 import types_pb2
from skiff.api import nodeaffinity

REASON = "node(s) didn't match Pod's node affinity/selector"


def fits(pod: types_pb2.Pod, node: types_pb2.Node) -> bool:
    return nodeaffinity.pod_fits_node(pod.spec, node)


def preferred_weight(pod: types_pb2.Pod, node: types_pb2.Node) -> int:
    """The sum of the weights of the preferred terms `node` matches (an empty term matches nothing)."""
    terms = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return sum(t.weight for t in terms if nodeaffinity.term_matches(t.preference, node))


@register("NodeAffinity")
class NodeAffinity:
    def pre_filter(self, pod: types_pb2.Pod, snapshot: object) -> Status | None:
        required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        return None if pod.spec.node_selector or required.node_selector_terms else SKIP

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        return Status.success() if fits(pod, node.node) else Status.unresolvable(REASON)

    def pre_score(self, pod: types_pb2.Pod, snapshot: object, feasible: list[NodeInfo]) -> bool:
        return bool(pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution)

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return preferred_weight(pod, node.node)

    def normalize(self, scores: dict[str, int]) -> None:
        default_normalize(scores)
