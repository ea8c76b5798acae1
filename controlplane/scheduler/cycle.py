"""One scheduling cycle, pure (kube-scheduler's schedulePod):

    pre_filter (every plugin that has one)  ─ a failure here fails the pod on every node
    filter: nodes in turn from `start`, stopping once enough feasible nodes are found
            (percentageOfNodesToScore; all nodes when fewer than 100)
    pre_score, score, normalize, × weight   ─ skipped when one node is feasible
    the highest total wins; ties go to the first by name (reproducible)

No feasible node: the Decision carries each node's Status, which preemption
reads (a node failing with Unschedulable may be helped by removing pods).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from controlplane.scheduler.framework import REGISTRY, SKIP, Code, NodeInfo, Snapshot, Status, unschedulable_message
from proto.skiff.v1 import types_pb2

_OK = Code.SUCCESS
_SUCCESS = Status.success()
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int = 0) -> int:
    """Kubernetes' numFeasibleNodesToFind: every node below 100; else the
    given percentage, or adaptively 50 - nodes/125 (at least 5), and never
    fewer than 100 nodes."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_all_nodes
    if percentage <= 0:
        percentage = max(BASE_PERCENTAGE_OF_NODES_TO_SCORE - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass(frozen=True)
class Profile:
    """Which plugins run, in order; scores as (name, weight)."""
    filters: tuple[str, ...]
    scores: tuple[tuple[str, int], ...]
    percentage_of_nodes_to_score: int = 0   # 0: adaptive, as Kubernetes' default

    def instantiate(self) -> tuple[list, list[tuple[object, int]]]:
        return ([REGISTRY[name]() for name in self.filters],
                [(REGISTRY[name](), weight) for name, weight in self.scores])


@dataclass(frozen=True)
class Decision:
    node_name: str | None
    message: str = ""
    statuses: dict[str, Status] = field(default_factory=dict)   # node -> why it failed
    evaluated: int = 0       # how many nodes the filters looked at (the next cycle starts after them)
    scores: dict[str, int] = field(default_factory=dict)


def run_filters(pod: types_pb2.Pod, info: NodeInfo, filter_plugins: Sequence) -> Status:
    """The first failing filter's Status, or Success."""
    for plugin in filter_plugins:
        status = plugin.filter(pod, info)
        if status.code is not _OK:
            return status
    return _SUCCESS


def pre_filter(pod: types_pb2.Pod, snapshot: Snapshot, filter_plugins: list) -> Status:
    """Run every pre_filter; plugins answering SKIP are taken out of `filter_plugins` (in place)."""
    skipped = []
    for plugin in filter_plugins:
        hook = getattr(plugin, "pre_filter", None)
        if hook is not None:
            status = hook(pod, snapshot)
            if status is SKIP:
                skipped.append(plugin)
            elif status is not None and not status.ok:
                return status
    for plugin in skipped:
        filter_plugins.remove(plugin)
    return Status.success()


def fits_on(pod: types_pb2.Pod, snapshot: Snapshot, info: NodeInfo, filters: Iterable[str]) -> Status:
    """Whether `pod` fits `info` in `snapshot` (a fresh plugin set: preemption's what-if)."""
    plugins = [REGISTRY[name]() for name in filters]
    status = pre_filter(pod, snapshot, plugins)
    return run_filters(pod, info, plugins) if status.ok else status


def schedule(pod: types_pb2.Pod, snapshot: Snapshot | Sequence[NodeInfo], profile: Profile, *,
             start: int = 0, nominated: str = "") -> Decision:
    if not isinstance(snapshot, Snapshot):
        snapshot = Snapshot(snapshot)
    nodes = snapshot.nodes
    if not nodes:
        return Decision(None, unschedulable_message(0, {}))
    filter_plugins, score_plugins = profile.instantiate()
    status = pre_filter(pod, snapshot, filter_plugins)
    if not status.ok:
        statuses = {n.name: status for n in nodes}
        return Decision(None, _message(len(nodes), statuses), statuses, len(nodes))
    # A pod nominated by an earlier preemption tries that node first (Kubernetes' evaluateNominatedNode).
    if nominated and nominated in snapshot.by_name:
        info = snapshot.by_name[nominated]
        if run_filters(pod, info, filter_plugins).ok:
            return Decision(nominated, evaluated=0)
    want = num_feasible_nodes_to_find(len(nodes), profile.percentage_of_nodes_to_score)
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    evaluated = 0
    # run_filters inlined (this loop runs once per node): the first failing filter's Status is the node's.
    # On a plain node (ready, schedulable, untainted: most of them) the node-only filters are skipped.
    filters = [plugin.filter for plugin in filter_plugins]
    plain_filters = [plugin.filter for plugin in filter_plugins if not getattr(plugin, "passes_plain_nodes", False)]
    count = len(nodes)
    start %= count
    for info in (nodes[start:] + nodes[:start]) if start else nodes:
        evaluated += 1
        for check in plain_filters if info.plain else filters:
            status = check(pod, info)
            if status.code is not _OK:
                statuses[info.name] = status
                break
        else:
            feasible.append(info)
            if len(feasible) >= want:
                break
    if not feasible:
        return Decision(None, _message(len(nodes), statuses), statuses, evaluated)
    if len(feasible) == 1:
        return Decision(feasible[0].name, statuses=statuses, evaluated=evaluated)
    totals = score(pod, snapshot, feasible, score_plugins)
    top = max(totals.values())
    best = min(name for name, total in totals.items() if total == top)   # a tie goes to the first by name
    return Decision(best, statuses=statuses, evaluated=evaluated, scores=totals)


def score(pod: types_pb2.Pod, snapshot: Snapshot, feasible: list[NodeInfo],
          score_plugins: Sequence[tuple[object, int]]) -> dict[str, int]:
    totals: dict[str, int] | None = None
    for plugin, weight in score_plugins:
        hook = getattr(plugin, "pre_score", None)
        if hook is not None and hook(pod, snapshot, feasible) is False:
            continue   # nothing to score for this pod (Kubernetes' Skip)
        many = getattr(plugin, "score_nodes", None)   # the same scores, the pod's side computed once
        scores = many(pod, feasible) if many is not None else {info.name: plugin.score(pod, info) for info in feasible}
        normalize = getattr(plugin, "normalize", None)
        if normalize is not None:
            normalize(scores)
        if totals is None:   # the first plugin's scores start the totals
            totals = scores if weight == 1 else {name: value * weight for name, value in scores.items()}
        elif weight == 1:
            for name, value in scores.items():
                totals[name] += value
        else:
            for name, value in scores.items():
                totals[name] += value * weight
    return totals if totals is not None else dict.fromkeys((info.name for info in feasible), 0)


def _message(total: int, statuses: dict[str, Status]) -> str:
    return unschedulable_message(total, {name: s.reasons for name, s in statuses.items() if s.code is not Code.SUCCESS})
