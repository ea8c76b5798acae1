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

from controlplane.scheduler.framework import (MAX_SCORE, SKIP, MatchCache, NodeInfo, Snapshot, Status, pod_groups,
                                              register)
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
        return self.matches_labels(pod.metadata.namespace, pod.metadata.labels, namespace_labels)

    def matches_labels(self, ns: str, labels: Mapping[str, str],
                       namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if self.selector is None:
            return False
        if ns not in self.namespaces and not (self.namespace_selector is not None and
                                              self.namespace_selector.matches(namespace_labels.get(ns, {}))):
            return False
        return self.selector.matches(labels)


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
# Equal terms (every pod of a Deployment has the same ones) are one object, so a cycle matches
# each distinct term once (keyed by id) however many pods carry it.
_INTERNED: dict[Term, Term] = {}


def _intern(parsed: tuple[Term, ...]) -> tuple[Term, ...]:
    if len(_INTERNED) > 50_000:
        _INTERNED.clear()
    return tuple(_INTERNED.setdefault(term, term) for term in parsed)


def terms(pod: types_pb2.Pod) -> tuple[tuple[Term, ...], tuple[Term, ...], tuple[Term, ...], tuple[Term, ...]]:
    """(required affinity, required anti-affinity, preferred affinity, preferred anti-affinity), parsed
    once per pod version (existing pods are looked at every cycle)."""
    key = (pod.metadata.namespace, pod.metadata.name, pod.metadata.uid, pod.metadata.resource_version)
    cached = _TERMS.get(key) if pod.metadata.resource_version else None
    if cached is not None:
        return cached  # type: ignore[return-value]
    a, anti = pod.spec.affinity.pod_affinity, pod.spec.affinity.pod_anti_affinity
    parsed = (_intern(tuple(make_term(t, pod) for t in a.required_during_scheduling_ignored_during_execution)),
              _intern(tuple(make_term(t, pod) for t in anti.required_during_scheduling_ignored_during_execution)),
              _intern(tuple(make_term(w.pod_affinity_term, pod, w.weight)
                            for w in a.preferred_during_scheduling_ignored_during_execution)),
              _intern(tuple(make_term(w.pod_affinity_term, pod, w.weight)
                            for w in anti.preferred_during_scheduling_ignored_during_execution)))
    if pod.metadata.resource_version:
        if len(_TERMS) > 50_000:
            _TERMS.clear()
        _TERMS[key] = parsed
    return parsed


def _pair(labels: Mapping[str, str], key: str) -> Pair | None:
    return (key, labels[key]) if key in labels else None


# Per NodeInfo, kept in its memo while it lives (across cycles: a node's pods change rarely).
def _existing_terms(info: NodeInfo, kind: str) -> tuple[tuple[Term, Pair, int], ...]:
    """The terms of the node's pods, each with its topology pair on this node and a count (equal
    terms summed): kind "anti" their required anti-affinity (the filter's symmetry), "score" the
    terms that score an incoming pod (required affinity at weight 1, preferred +, preferred anti -)."""
    memo_key = "existing_terms_" + kind
    found = info.memo.get(memo_key)
    if found is None:
        weights: Counter[tuple[Term, Pair]] = Counter()
        pods = info.pods_with_required_anti_affinity if kind == "anti" else info.pods_with_affinity
        for existing in pods:
            required, anti, preferred, preferred_anti = terms(existing)
            weighted = ([(t, 1) for t in anti] if kind == "anti" else
                        [(t, HARD_POD_AFFINITY_WEIGHT) for t in required] + [(t, t.weight) for t in preferred]
                        + [(t, -t.weight) for t in preferred_anti])
            for term, weight in weighted:
                if weight and (pair := _pair(info.labels, term.topology_key)):
                    weights[(term, pair)] += weight
        found = info.memo[memo_key] = tuple((t, pair, w) for (t, pair), w in weights.items() if w)
    return found


def _matches(ns_labels: Mapping[str, Mapping[str, str]]) -> MatchCache:
    return MatchCache(lambda term, ns, labels: term.matches_labels(ns, labels, ns_labels))


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
        matches = _matches(ns_labels)
        namespace, own_labels = pod.metadata.namespace, dict(pod.metadata.labels)
        for info in snapshot.have_pods_with_required_anti_affinity:
            for term, pair, count in _existing_terms(info, "anti"):
                if matches(term, namespace, own_labels):
                    self.existing_anti_affinity_counts[pair] += count
        if self.affinity or self.anti_affinity:
            for info in snapshot.nodes:
                labels = info.labels
                for ns, pod_labels, count in pod_groups(info):
                    if self.affinity and all(matches(t, ns, pod_labels) for t in self.affinity):
                        for term in self.affinity:
                            if pair := _pair(labels, term.topology_key):
                                self.affinity_counts[pair] += count
                    for term in self.anti_affinity:
                        if matches(term, ns, pod_labels) and (pair := _pair(labels, term.topology_key)):
                            self.anti_affinity_counts[pair] += count
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
        matches = _matches(ns_labels)
        if preferred or preferred_anti:   # this pod's preferences, over every pod placed
            weighted = [(t, t.weight) for t in preferred] + [(t, -t.weight) for t in preferred_anti]
            for info in snapshot.nodes:
                labels = info.labels
                for ns, pod_labels, count in pod_groups(info):
                    for term, weight in weighted:
                        if weight and matches(term, ns, pod_labels) and (pair := _pair(labels, term.topology_key)):
                            self.topology_score[pair] += weight * count
        namespace, own_labels = pod.metadata.namespace, dict(pod.metadata.labels)
        for info in snapshot.have_pods_with_affinity:   # the placed pods' terms that score this one
            for term, pair, weight in _existing_terms(info, "score"):
                if matches(term, namespace, own_labels):
                    self.topology_score[pair] += weight
        return bool(self.topology_score)

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        return sum(self.topology_score.get((k, v), 0) for k, v in node.labels.items())

    def normalize(self, scores: dict[str, int]) -> None:
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        for name, value in scores.items():
            scores[name] = int(MAX_SCORE * (value - low) / (high - low)) if high > low else 0
