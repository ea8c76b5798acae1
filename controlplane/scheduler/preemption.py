"""DefaultPreemption, pure: when a pod fits no node, which pods to evict, where.

    eligible?     preemptionPolicy Never, or a lower-priority pod still terminating on the
                  node it was nominated to, mean no (Kubernetes' PodEligibleToPreemptOthers)
    candidates    nodes whose filter failed with Unschedulable (Unresolvable ones - affinity,
                  taints, node name - "Preemption is not helpful for scheduling"); on each:
                  remove every pod of lower priority; the pod must fit then; add back the
                  most important first (higher priority, then earlier start), those covered by
                  an exhausted PodDisruptionBudget before the others, keeping each that still
                  lets it fit; the rest are the victims
    pick          fewest PDB violations, then the lowest highest-victim priority, the lowest
                  sum of priorities, the fewest victims, the latest start among the most
                  important victims, the first node (Kubernetes' pickOneNodeForPreemption)

The scheduler (scheduler.py) then deletes the victims gracefully and sets the
preemptor's status.nominatedNodeName; the pod is scheduled when they are gone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from controlplane.scheduler.cycle import fits_on
from controlplane.scheduler.framework import NodeInfo, Snapshot, Status, pod_priority, terminating, \
    unschedulable_message
from proto.skiff.v1 import types_pb2
from skiff.api import labelselector, selectors

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING = "not eligible due to a terminating pod on the nominated node."
# Kubernetes' DefaultPreemption args: dry-run at least 10 % of the nodes, at least 100.
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
_PRIORITY_OFFSET = 2 ** 31   # so negative priorities still add up to something comparable


@dataclass(frozen=True)
class Budget:
    """What preemption needs of a PodDisruptionBudget."""
    namespace: str
    selector: selectors.LabelSelector | None   # an empty selector covers nothing here, as Kubernetes'
    disruptions_allowed: int
    disrupted_pods: frozenset[str] = frozenset()

    @classmethod
    def of(cls, pdb: object) -> "Budget":
        spec, status = pdb.spec, pdb.status  # type: ignore[attr-defined]
        sel = spec.selector
        selector = None if labelselector.is_empty(sel) else labelselector.to_selector(sel)
        return cls(pdb.metadata.namespace, selector, status.disruptions_allowed,  # type: ignore[attr-defined]
                   frozenset(status.disrupted_pods))


@dataclass(frozen=True)
class Candidate:
    node: str
    victims: tuple[types_pb2.Pod, ...]
    pdb_violations: int


@dataclass(frozen=True)
class Outcome:
    candidate: Candidate | None
    message: str          # "preemption: ..." when no candidate, else ""


def more_important(pod: types_pb2.Pod) -> tuple[int, float]:
    """Sort key: higher priority first, then the earlier started (Kubernetes' MoreImportantPod)."""
    started = pod.status.start_time.ToNanoseconds() / 1e9 if pod.status.HasField("start_time") else float("inf")
    return -pod_priority(pod), started


def ineligible(pod: types_pb2.Pod, snapshot: Snapshot) -> str:
    """Why `pod` may not preempt ("" when it may)."""
    if pod.spec.preemption_policy == "Never":
        return NEVER
    nominated = snapshot.by_name.get(pod.status.nominated_node_name)
    if nominated is not None:
        priority = pod_priority(pod)
        if any(terminating(p) and pod_priority(p) < priority for p in nominated.pods):
            return TERMINATING
    return ""


def split_by_budget(pods: Sequence[types_pb2.Pod], budgets: Sequence[Budget]
                    ) -> tuple[list[types_pb2.Pod], list[types_pb2.Pod]]:
    """(pods whose eviction would exceed a budget, the others), order kept; each budget's allowance
    is used up by the pods before (Kubernetes' filterPodsWithPDBViolation)."""
    allowed = [b.disruptions_allowed for b in budgets]
    violating, fine = [], []
    for pod in pods:
        violated = False
        for i, b in enumerate(budgets):
            if b.namespace != pod.metadata.namespace or b.selector is None \
                    or not b.selector.matches(pod.metadata.labels) or pod.metadata.name in b.disrupted_pods:
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                violated = True
        (violating if violated else fine).append(pod)
    return violating, fine


def select_victims(pod: types_pb2.Pod, snapshot: Snapshot, info: NodeInfo, filters: Iterable[str],
                   budgets: Sequence[Budget]) -> tuple[Candidate | None, Status]:
    filters = tuple(filters)
    priority = pod_priority(pod)
    potential = sorted((p for p in info.pods if pod_priority(p) < priority), key=more_important)
    if not potential:
        return None, Status.unresolvable(NO_VICTIMS)
    current = info.without(potential)
    status = fits_on(pod, snapshot.replace(current), current, filters)
    if not status.ok:
        return None, status
    victims: list[types_pb2.Pod] = []
    violations = 0
    violating, fine = split_by_budget(potential, budgets)
    for group, counts in ((violating, True), (fine, False)):
        for p in group:
            trial = current.with_pod(p)
            if fits_on(pod, snapshot.replace(trial), trial, filters).ok:
                current = trial          # reprieved: it stays
            else:
                victims.append(p)
                violations += counts
    if not victims:
        return None, Status.unresolvable(NO_VICTIMS)
    return Candidate(info.name, tuple(sorted(victims, key=more_important)), violations), Status.success()


def pick(candidates: Sequence[Candidate]) -> Candidate:
    def key(c: Candidate) -> tuple:
        top = max(pod_priority(p) for p in c.victims)
        top_started = [more_important(p)[1] for p in c.victims if pod_priority(p) == top]
        return (c.pdb_violations, top, sum(pod_priority(p) + _PRIORITY_OFFSET for p in c.victims),
                len(c.victims), -min(top_started))
    return min(candidates, key=key)   # min keeps the first of equals


def preempt(pod: types_pb2.Pod, snapshot: Snapshot, statuses: dict[str, Status], filters: Iterable[str],
            budgets: Sequence[Budget] = (), *, offset: int = 0) -> Outcome:
    """The node and victims for `pod`, given the cycle's per-node filter statuses."""
    reason = ineligible(pod, snapshot)
    if reason:
        return Outcome(None, f"preemption: {reason}")
    filters = tuple(filters)
    nodes = snapshot.nodes
    wanted = max(len(nodes) * MIN_CANDIDATE_NODES_PERCENTAGE // 100, MIN_CANDIDATE_NODES_ABSOLUTE)
    outcome: dict[str, tuple[str, ...]] = {}
    candidates: list[Candidate] = []
    for i in range(len(nodes)):
        info = nodes[(offset + i) % len(nodes)]
        status = statuses.get(info.name)
        if status is None or not status.resolvable:
            outcome[info.name] = (NOT_HELPFUL,)
            continue
        if len(candidates) >= wanted:
            continue
        candidate, status = select_victims(pod, snapshot, info, filters, budgets)
        if candidate is None:
            outcome[info.name] = status.reasons
        else:
            candidates.append(candidate)
    if not candidates:
        return Outcome(None, "preemption: " + unschedulable_message(len(nodes), outcome))
    return Outcome(pick(candidates), "")
