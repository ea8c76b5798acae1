"""Whether a pod may run on a node by its own rules: spec.nodeSelector (every
label equal) and the required node affinity terms (any term; within a term,
every expression: In, NotIn, Exists, DoesNotExist, Gt, Lt on labels,
In/NotIn on the field metadata.name). Pure; the DaemonSet controller decides
with it (Kubernetes' `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`)."""
from __future__ import annotations

from typing import Mapping

from proto.skiff.v1 import types_pb2


def _expression(req: types_pb2.NodeSelectorRequirement, values: Mapping[str, str]) -> bool:
    present = req.key in values
    value = values.get(req.key, "")
    op = req.operator
    if op == "In":
        return present and value in req.values
    if op == "NotIn":
        return not present or value not in req.values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(req.values) == 1:
        try:
            have, want = int(value), int(req.values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: types_pb2.NodeSelectorTerm, node: types_pb2.Node) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False  # an empty term matches nothing, as Kubernetes'
    fields = {"metadata.name": node.metadata.name}
    return (all(_expression(r, node.metadata.labels) for r in term.match_expressions)
            and all(_expression(r, fields) for r in term.match_fields))


def pod_fits_node(spec: types_pb2.PodSpec, node: types_pb2.Node) -> bool:
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    if spec.HasField("affinity") and spec.affinity.HasField("node_affinity"):
        required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        if required.node_selector_terms and not any(term_matches(t, node) for t in required.node_selector_terms):
            return False
    return True
