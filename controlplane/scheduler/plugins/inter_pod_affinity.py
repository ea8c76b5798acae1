"""InterPodAffinity: place a pod by the pods already running, per topology
domain (the nodes sharing a value of the term's topologyKey).

Filter, in Kubernetes' order:
  required affinity       every term has a matching pod in the node's domain
                          (the first pod of a group that matches its own terms
                          may go anywhere) - else Unresolvable
  required anti-affinity  no term has a matching pod in the node's domain
  existing anti-affinity  no pod already placed has a required anti-affinity
                          term matching this pod, in the node's domain (symmetry)
Score: per domain, + the weight of each preferred affinity term a pod there
matches, - each preferred anti-affinity term; and the same from the existing
pods' terms matching this pod (their required affinity with weight 1,
hardPodAffinityWeight); normalized (min..max) to 0-100.

A term matches a pod by its labelSelector (absent: nothing; {}: every pod)
in its namespaces: `namespaces` plus those `namespaceSelector` selects
(absent: none; {}: all); neither set: the term owner's namespace.
matchLabelKeys / mismatchLabelKeys add `key in|notin (owner's value)`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping

from controlplane.scheduler.framework import MAX_SCORE, SKIP, NodeInfo, Snapshot, Status, register
from proto.skiff.v1 import types_pb2
from skiff.api import labelselector, selectors

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1

Pair = tuple[str, str]   # (topologyKey, value)


@dataclass(frozen=True)
class Term:
    selector: selectors.LabelSelector | None          # None: matches no pod
    namespaces: frozenset[str]
    namespace_selector: selectors.LabelSelector | None
    topology_key: str
    weight: int = 1

    def matches(self, pod: types_pb2.Pod, namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if self.selector is None:
            return False
        ns = pod.metadata.namespace
        if ns not in self.namespaces and not (self.namespace_selector is not None and
                                              self.namespace_selector.matches(namespace_labels.get(ns, {}))):
            return False
        return self.selector.matches(pod.metadata.labels)


def make_term(term: types_pb2.PodAffinityTerm, owner: types_pb2.Pod, weight: int = 1) -> Term:
    ns_selector = (labelselector.to_selector(term.namespace_selector)
                   if term.HasField("namespace_selector") else None)
    namespaces = frozenset(term.namespaces)
    if not namespaces and ns_selector is None:
        namespaces = frozenset((owner.metadata.namespace,))
    selector = None
    if term.HasField("label_selector"):
        selector = labelselector.to_selector(term.label_selector)
        labels = owner.metadata.labels
        extra = [selectors.Requirement(k, "in", (labels[k],)) for k in term.match_label_keys if k in labels]
        extra += [selectors.Requirement(k, "notin", (labels[k],)) for k in term.mismatch_label_keys if k in labels]
        if extra:
            selector = selectors.LabelSelector(selector.requirements + tuple(extra))
    return Term(selector, namespaces, ns_selector, term.topology_key, weight)


_TERMS: dict[tuple[str, str, str, str], tuple[tuple[Term, ...], ...]] = {}


def terms(pod: types_pb2.Pod) -> tuple[tuple[Term, ...], tuple[Term, ...], tuple[Term, ...], tuple[Term, ...]]:
    """(required affinity, required anti-affinity, preferred affinity, preferred anti-affinity), parsed
    once per pod version (existing pods are looked at every cycle)."""
    key = (pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, pod.metadata.resource_version)
    cached = _TERMS.get(key) if pod.metadata.resource_version else None
    if cached is not None:
        return cached  # type: ignore[return-value]
    a, anti = pod.spec.affinity.pod_affinity, pod.spec.affinity.pod_anti_affinity
    parsed = (tuple(make_term(t, pod) for t in a.required_during_scheduling_ignored_during_execution),
              tuple(make_term(t, pod) for t in anti.required_during_scheduling_ignored_during_execution),
              tuple(make_term(w.pod_affinity_term, pod, w.weight)
                    for w in a.preferred_during_scheduling_ignored_during_execution),
              tuple(make_term(w.pod_affinity_term, pod, w.weight)
                    for w in anti.preferred_during_scheduling_ignored_during_execution))
    if pod.metadata.resource_version:
        if len(_TERMS) > 50_000:
            _TERMS.clear()
        _TERMS[key] = parsed
    return parsed


def _pair(labels: Mapping[str, str], key: str) -> Pair | None:
    return (key, labels[key]) if key in labels else None


@register("InterPodAffinity")
class InterPodAffinity:
    def __init__(self) -> None:
        self.affinity: tuple[Term, ...] = ()
        self.anti_affinity: tuple[Term, ...] = ()
        self.affinity_counts: Counter[Pair] = Counter()
        self.anti_affinity_counts: Counter[Pair] = Counter()
        self.existing_anti_affinity_counts: Counter[Pair] = Counter()
        self.self_matches_all = False
        self.topology_score: Counter[Pair] = Counter()

    # ------------------------------------------------------------ filter

    def pre_filter(self, pod: types_pb2.Pod, snapshot: Snapshot) -> Status | None:
        ns_labels = snapshot.namespace_labels
        self.affinity, self.anti_affinity, _, _ = terms(pod)
        for info in snapshot.have_pods_with_required_anti_affinity:
            # The node's pods' required anti-affinity terms, kept while this NodeInfo lives (across cycles).
            node_terms = info.memo.get("required_anti_affinity_terms")
            if node_terms is None:
                node_terms = info.memo["required_anti_affinity_terms"] = tuple(
                    t for existing in info.pods_with_required_anti_affinity for t in terms(existing)[1])
            for term in node_terms:
                if term.matches(pod, ns_labels) and (pair := _pair(info.labels, term.topology_key)):
                    self.existing_anti_affinity_counts[pair] += 1
        if self.affinity or self.anti_affinity:
            for info in snapshot.nodes:
                for existing in info.pods:
                    if self.affinity and all(t.matches(existing, ns_labels) for t in self.affinity):
                        for term in self.affinity:
                            if pair := _pair(info.labels, term.topology_key):
                                self.affinity_counts[pair] += 1
                    for term in self.anti_affinity:
                        if term.matches(existing, ns_labels) and (pair := _pair(info.labels, term.topology_key)):
                            self.anti_affinity_counts[pair] += 1
        self.self_matches_all = bool(self.affinity) and all(t.matches(pod, ns_labels) for t in self.affinity)
        if not self.affinity and not self.anti_affinity and not self.existing_anti_affinity_counts:
            return SKIP
        return None

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        labels = node.labels
        if not self._satisfies_affinity(labels):
            return Status.unresolvable(REASON_AFFINITY)
        if any((pair := _pair(labels, t.topology_key)) and self.anti_affinity_counts[pair] > 0
               for t in self.anti_affinity):
            return Status.unschedulable(REASON_ANTI_AFFINITY)
        if self.existing_anti_affinity_counts and any(
                self.existing_anti_affinity_counts[(k, v)] > 0 for k, v in labels.items()):
            return Status.unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        return Status.success()

    def _satisfies_affinity(self, labels: Mapping[str, str]) -> bool:
        pods_exist = True
        for term in self.affinity:
            if term.topology_key not in labels:
                return False   # every topology key must be on the node
            if self.affinity_counts[(term.topology_key, labels[term.topology_key])] <= 0:
                pods_exist = False
        # The first pod of a group with affinity to itself may go anywhere its topologies exist.
        return pods_exist or (not self.affinity_counts and self.self_matches_all)

    # ------------------------------------------------------------ score

    def pre_score(self, pod: types_pb2.Pod, snapshot: Snapshot, feasible: list[NodeInfo]) -> bool:
        ns_labels = snapshot.namespace_labels
        _, _, preferred, preferred_anti = terms(pod)
        nodes = snapshot.nodes if (preferred or preferred_anti) else snapshot.have_pods_with_affinity
        for info in nodes:
            labels = info.labels
            for existing in (info.pods if (preferred or preferred_anti) else info.pods_with_affinity):
                for term in preferred:
                    self._add(term, existing, labels, ns_labels, term.weight)
                for term in preferred_anti:
                    self._add(term, existing, labels, ns_labels, -term.weight)
                if existing.spec.HasField("affinity"):
                    req, _, pref, pref_anti = terms(existing)
                    for term in req:
                        self._add(term, pod, labels, ns_labels, HARD_POD_AFFINITY_WEIGHT)
                    for term in pref:
                        self._add(term, pod, labels, ns_labels, term.weight)
                    for term in pref_anti:
                        self._add(term, pod, labels, ns_labels, -term.weight)
        return bool(self.topology_score)

    def _add(self, term: Term, target: types_pb2.Pod, labels: Mapping[str, str],
             ns_labels: Mapping[str, Mapping[str, str]], weight: int) -> None:
        if weight and term.matches(target, ns_labels) and (pair := _pair(labels, term.topology_key)):
            self.topology_score[pair] += weight

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return sum(self.topology_score.get((k, v), 0) for k, v in node.labels.items())

    def normalize(self, scores: dict[str, int]) -> None:
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        for name, value in scores.items():
            scores[name] = int(MAX_SCORE * (value - low) / (high - low)) if high > low else 0
