"""PodTopologySpread: spread matching pods evenly over topology domains.

For each constraint, the pods in the pod's namespace matching its
labelSelector (plus matchLabelKeys' `key in (the pod's value)`; no selector
matches nothing; terminating pods do not count) are counted per value of
topologyKey, over the nodes that have every constraint's key and pass the
node policies (nodeAffinityPolicy Honor by default: the node matches the pod's
nodeSelector / required node affinity; nodeTaintsPolicy Ignore by default).

Filter (whenUnsatisfiable: DoNotSchedule): placing the pod on the node must
keep  count(node's domain) + (1 if the pod matches itself) - global minimum
<= maxSkew, where the global minimum is 0 while fewer than minDomains
domains exist. A node without the key is Unresolvable.

Score (ScheduleAnyway): Σ count(domain) × log(domains + 2) + (maxSkew - 1),
rounded; fewer is better: normalized as 100 × (max + min - score) / max;
nodes missing a key score 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from controlplane.scheduler.framework import (HOSTNAME_LABEL, MAX_SCORE, SKIP, MatchCache, NodeInfo, Snapshot, Status,
                                              pod_groups, register)
from controlplane.scheduler.plugins.taint_toleration import untolerated
from proto.skiff.v1 import types_pb2
from skiff.api import labelselector, nodeaffinity, selectors

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
DO_NOT_SCHEDULE, SCHEDULE_ANYWAY = "DoNotSchedule", "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: selectors.LabelSelector | None   # None: matches no pod
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_taints: bool = False

    def matches(self, pod: types_pb2.Pod) -> bool:
        return self.matches_labels(pod.metadata.labels)

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return self.selector is not None and self.selector.matches(labels)


def constraints(pod: types_pb2.Pod, when: str) -> list[Constraint]:
    out = []
    labels = pod.metadata.labels
    for c in pod.spec.topology_spread_constraints:
        if c.when_unsatisfiable != when:
            continue
        selector = None
        if c.HasField("label_selector"):
            selector = labelselector.to_selector(c.label_selector)
            extra = tuple(selectors.Requirement(k, "in", (labels[k],)) for k in c.match_label_keys if k in labels)
            if extra:
                selector = selectors.LabelSelector(selector.requirements + extra)
        out.append(Constraint(c.max_skew, c.topology_key, selector,
                              c.min_domains if c.HasField("min_domains") else 1,
                              (c.node_affinity_policy or HONOR) == HONOR,
                              (c.node_taints_policy or IGNORE) == HONOR))
    return out


def count_matching(info: NodeInfo, namespace: str, constraint: Constraint) -> int:
    return sum(n for ns, labels, n in pod_groups(info, live=True)
               if ns == namespace and constraint.matches_labels(labels))


def _passes_policies(pod: types_pb2.Pod, node: types_pb2.Node, c: Constraint, *, has_node_rules: bool) -> bool:
    if c.honor_node_affinity and has_node_rules and not nodeaffinity.pod_fits_node(pod.spec, node):
        return False
    return not (c.honor_taints and node.spec.taints and untolerated(pod, node) is not None)


def domain_counts(pod: types_pb2.Pod, nodes: list[NodeInfo], cons: list[Constraint]) -> list[dict[str, int]]:
    """Per constraint: topology value -> matching pods, over the eligible nodes."""
    counts: list[dict[str, int]] = [{} for _ in cons]
    ns = pod.metadata.namespace
    has_node_rules = bool(pod.spec.node_selector) or pod.spec.affinity.HasField("node_affinity")
    keys = [c.topology_key for c in cons]
    policies = [(c.honor_node_affinity and has_node_rules) or c.honor_taints for c in cons]
    matches = MatchCache(lambda c, _ns, labels: c.matches_labels(labels))
    for info in nodes:
        labels = info.labels
        if not all(key in labels for key in keys):
            continue   # a node counts only if it has every constraint's key
        groups = pod_groups(info, live=True)
        for i, c in enumerate(cons):
            if policies[i] and not _passes_policies(pod, info.node, c, has_node_rules=has_node_rules):
                continue
            n = 0
            for group_ns, group_labels, count in groups:
                if group_ns == ns and matches(c, ns, group_labels):
                    n += count
            domain = counts[i]
            value = labels[keys[i]]
            domain[value] = domain.get(value, 0) + n
    return counts


@register("PodTopologySpread")
class PodTopologySpread:
    def __init__(self) -> None:
        self.hard: list[Constraint] = []
        self.counts: list[dict[str, int]] = []
        self.minimums: list[int] = []
        self.self_matches: list[int] = []
        self.soft: list[Constraint] = []
        self.soft_counts: list[dict[str, int]] = []
        self.weights: list[float] = []
        self.ignored: set[str] = set()

    # ------------------------------------------------------------ filter

    def pre_filter(self, pod: types_pb2.Pod, snapshot: Snapshot) -> Status | None:
        self.hard = constraints(pod, DO_NOT_SCHEDULE)
        if not self.hard:
            return SKIP
        self.counts = domain_counts(pod, snapshot.nodes, self.hard)
        self.minimums = [min(counts.values()) if len(counts) >= c.min_domains and counts else 0
                         for c, counts in zip(self.hard, self.counts)]
        self.self_matches = [1 if c.matches(pod) else 0 for c in self.hard]
        return None

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        labels = node.labels
        for c, counts, minimum, self_match in zip(self.hard, self.counts, self.minimums, self.self_matches):
            if c.topology_key not in labels:
                return Status.unresolvable(REASON_MISSING_LABEL)
            if counts.get(labels[c.topology_key], 0) + self_match - minimum > c.max_skew:
                return Status.unschedulable(REASON)
        return Status.success()

    # ------------------------------------------------------------ score

    def pre_score(self, pod: types_pb2.Pod, snapshot: Snapshot, feasible: list[NodeInfo]) -> bool:
        self.soft = constraints(pod, SCHEDULE_ANYWAY)
        if not self.soft:
            return False
        keys = [c.topology_key for c in self.soft]
        self.ignored = {n.name for n in feasible if not all(k in n.labels for k in keys)}
        # Domains are the feasible nodes' values; pods are counted over every eligible node in them.
        domains: list[set[str]] = [{n.labels[c.topology_key] for n in feasible if n.name not in self.ignored}
                                   for c in self.soft]
        counts = domain_counts(pod, snapshot.nodes, self.soft)
        self.soft_counts = [{v: n for v, n in counts[i].items() if v in domains[i]} for i in range(len(self.soft))]
        scored = len(feasible) - len(self.ignored)
        self.weights = [math.log((scored if c.topology_key == HOSTNAME_LABEL else len(domains[i])) + 2)
                        for i, c in enumerate(self.soft)]
        return True

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        if node.name in self.ignored:
            return 0
        total = 0.0
        for c, counts, weight in zip(self.soft, self.soft_counts, self.weights):
            if c.topology_key == HOSTNAME_LABEL:
                n = count_matching(node, pod.metadata.namespace, c)
            else:
                n = counts.get(node.labels[c.topology_key], 0)
            total += n * weight + (c.max_skew - 1)
        return round(total)

    def normalize(self, scores: dict[str, int]) -> None:
        considered = [v for name, v in scores.items() if name not in self.ignored]
        if not considered:
            return
        low, high = min(considered), max(considered)
        for name, value in scores.items():
            if name in self.ignored:
                scores[name] = 0
            elif high == 0:
                scores[name] = MAX_SCORE
            else:
                scores[name] = MAX_SCORE * (high + low - value) // high

