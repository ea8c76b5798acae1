"""The scheduling framework: what a plugin is and what it returns.

The extension points are kube-scheduler's, each optional on a plugin:

    pre_filter(pod, snapshot) -> Status | None   once per cycle: cluster-wide state (counts per topology);
                                                 SKIP: nothing to check, filter is not called
    filter(pod, node) -> Status                  can the pod run on this node?
    passes_plain_nodes = True                    optional: filter is Success on every NodeInfo.plain node
                                                 (ready, schedulable, untainted), so the cycle skips it there
    pre_score(pod, snapshot, feasible)           once per cycle, over the nodes that passed
    score(pod, node) -> int                      rank one feasible node
    score_nodes(pod, feasible) -> {node: int}    optional: score() over every feasible node in one call
                                                 (the pod's side computed once; same numbers)
    normalize(scores) -> None                    scores (node name -> int) brought to 0-100 in place

A Filter says Success, Unschedulable (the pod does not fit now; removing
pods - preemption - may help) or UnschedulableAndUnresolvable (nothing but
a change of the node or the pod helps; preemption skips the node), with a
reason worded as Kubernetes words it; the reasons end up in the pod's
PodScheduled condition. A plugin instance lives for one scheduling cycle
(cycle.py makes a fresh one per pod), so pre_filter/pre_score may keep their
state on `self`. Plugins are pure: they see the pod and a Snapshot (nodes with
the pods counted against them, namespaces' labels), never the API.
"""
from __future__ import annotations

import collections
import enum
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol

from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError, cpu_millis, memory_bytes

MAX_SCORE = 100
# What a container without a request counts as when scores compare nodes
# (Kubernetes' DefaultMilliCPURequest / DefaultMemoryRequest): a node full of
# best-effort pods is not "empty".
NON_ZERO_CPU_MILLIS = 100
NON_ZERO_MEMORY_BYTES = 200 * 1024 * 1024
HOSTNAME_LABEL = "kubernetes.io/hostname"


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"  # the pod does not fit this node now; preemption may help
    UNRESOLVABLE = "UnschedulableAndUnresolvable"  # removing pods would not help
    ERROR = "Error"                  # the plugin could not decide (bad data)


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @property
    def resolvable(self) -> bool:
        """Whether removing pods from the node might make the pod fit."""
        return self.code is Code.UNSCHEDULABLE

    @classmethod
    def success(cls) -> "Status":
        return _SUCCESS

    @classmethod
    def unschedulable(cls, *reasons: str) -> "Status":
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> "Status":
        return cls(Code.UNRESOLVABLE, reasons)

    @classmethod
    def error(cls, reason: str) -> "Status":
        return cls(Code.ERROR, (reason,))


_SUCCESS = Status()
# What pre_filter returns when the plugin has nothing to check for this pod: its filter is not
# called this cycle (Kubernetes' Skip), so a pod without affinity pays nothing for affinity.
SKIP = Status(Code.SUCCESS, ("skip",))


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes)


def _quantity(values: Mapping[str, str], name: str) -> int:
    text = values.get(name)
    if text is None:
        return 0
    return cpu_millis(text) if name == "cpu" else memory_bytes(text)


def _requests(pod: types_pb2.Pod, *, non_zero: bool) -> Resources:
    def container(c: types_pb2.Container) -> Resources:
        req, lim = c.resources.requests, c.resources.limits
        cpu_from = req if "cpu" in req else lim
        mem_from = req if "memory" in req else lim
        cpu, mem = _quantity(cpu_from, "cpu"), _quantity(mem_from, "memory")
        if non_zero:
            cpu = cpu if "cpu" in cpu_from else NON_ZERO_CPU_MILLIS
            mem = mem if "memory" in mem_from else NON_ZERO_MEMORY_BYTES
        return Resources(cpu, mem)
    total = Resources()
    for c in pod.spec.containers:
        total += container(c)
    for c in pod.spec.init_containers:
        ic = container(c)
        total = Resources(max(total.cpu_millis, ic.cpu_millis), max(total.memory_bytes, ic.memory_bytes))
    return total


# The last pod asked about, by identity (a cycle asks about one pod once per node and plugin;
# holding it keeps its id from being reused): (pod, non_zero) -> Resources.
_last: dict[bool, tuple[types_pb2.Pod, Resources]] = {}


def _cached_requests(pod: types_pb2.Pod, non_zero: bool) -> Resources:
    hit = _last.get(non_zero)
    if hit is not None and hit[0] is pod:
        return hit[1]
    value = _requests(pod, non_zero=non_zero)
    _last[non_zero] = (pod, value)
    return value


def pod_requests(pod: types_pb2.Pod) -> Resources:
    """What a pod asks for: the sum over its containers (the largest init
    container if that is more), each container's request defaulting to its
    limit as Kubernetes defaults it."""
    return _cached_requests(pod, False)


def pod_non_zero_requests(pod: types_pb2.Pod) -> Resources:
    """pod_requests with an absent request counted as 100m CPU / 200Mi (scoring only)."""
    return _cached_requests(pod, True)


def pod_priority(pod: types_pb2.Pod) -> int:
    """spec.priority, which the Priority admission sets from the class; 0 when absent."""
    return pod.spec.priority if pod.spec.HasField("priority") else 0


def has_required_anti_affinity(pod: types_pb2.Pod) -> bool:
    a = pod.spec.affinity
    return bool(a.pod_anti_affinity.required_during_scheduling_ignored_during_execution)


def has_affinity(pod: types_pb2.Pod) -> bool:
    a = pod.spec.affinity
    return bool(a.pod_affinity.required_during_scheduling_ignored_during_execution
                or a.pod_affinity.preferred_during_scheduling_ignored_during_execution
                or a.pod_anti_affinity.required_during_scheduling_ignored_during_execution
                or a.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution)


@dataclass(frozen=True)
class NodeInfo:
    """A node and the pods counted against it (bound, assumed or nominated; not finished)."""
    node: types_pb2.Node
    pods: tuple[types_pb2.Pod, ...] = ()
    requested: Resources = field(default=Resources())
    non_zero_requested: Resources = field(default=Resources())
    # Per-node values a plugin derives from the node alone (its images, say), kept while this NodeInfo lives.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def name(self) -> str:
        return self.node.metadata.name

    @functools.cached_property
    def labels(self) -> Mapping[str, str]:
        return dict(self.node.metadata.labels)

    @functools.cached_property
    def allocatable(self) -> Resources:
        values = dict(self.node.status.allocatable) or dict(self.node.status.capacity)
        try:
            return Resources(_quantity(values, "cpu"), _quantity(values, "memory"))
        except QuantityError:
            return Resources()

    # The node's own facts the filters read on every cycle, as plain values (no protobuf access per cycle).
    @functools.cached_property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.node.status.conditions)

    @functools.cached_property
    def unschedulable(self) -> bool:
        return self.node.spec.unschedulable

    @functools.cached_property
    def taints(self) -> tuple[types_pb2.Taint, ...]:
        return tuple(self.node.spec.taints)

    @functools.cached_property
    def plain(self) -> bool:
        """Ready, schedulable and untainted: the filters marked `passes_plain_nodes` need not run."""
        return self.ready and not self.unschedulable and not self.taints

    @functools.cached_property
    def allocatable_pods(self) -> int:
        values = dict(self.node.status.allocatable) or dict(self.node.status.capacity)
        try:
            return int(values.get("pods", "110"))
        except ValueError:
            return 110

    @functools.cached_property
    def free(self) -> tuple[int, int, int]:
        """(pod slots, CPU millis, memory bytes) left: allocatable minus what the pods request (may be < 0)."""
        have = self.allocatable
        return (self.allocatable_pods - len(self.pods), have.cpu_millis - self.requested.cpu_millis,
                have.memory_bytes - self.requested.memory_bytes)

    @functools.cached_property
    def resource_view(self) -> tuple[int, int, int, int, int, int]:
        """(allocatable CPU, memory; requested CPU, memory; non-zero requested CPU, memory) as
        plain ints: the scores read them for every feasible node on every cycle."""
        have, used, non_zero = self.allocatable, self.requested, self.non_zero_requested
        return (have.cpu_millis, have.memory_bytes, used.cpu_millis, used.memory_bytes,
                non_zero.cpu_millis, non_zero.memory_bytes)

    @functools.cached_property
    def pods_with_affinity(self) -> tuple[types_pb2.Pod, ...]:
        return tuple(p for p in self.pods if has_affinity(p))

    @functools.cached_property
    def pods_with_required_anti_affinity(self) -> tuple[types_pb2.Pod, ...]:
        return tuple(p for p in self.pods_with_affinity if has_required_anti_affinity(p))

    @classmethod
    def build(cls, node: types_pb2.Node, pods: Iterable[types_pb2.Pod],
              requests: Callable[[types_pb2.Pod], tuple[Resources, Resources]] | None = None) -> "NodeInfo":
        """`requests`, if given, answers (pod_requests, pod_non_zero_requests) for a pod (a cache's memo)."""
        pods = tuple(pods)
        requested, non_zero = Resources(), Resources()
        for pod in pods:
            try:
                if requests is not None:
                    want, want_non_zero = requests(pod)
                else:
                    want, want_non_zero = pod_requests(pod), pod_non_zero_requests(pod)
            except QuantityError:
                continue  # refused by validation; never counted
            requested += want
            non_zero += want_non_zero
        return cls(node=node, pods=pods, requested=requested, non_zero_requested=non_zero)

    def without(self, victims: Iterable[types_pb2.Pod]) -> "NodeInfo":
        gone = {(p.metadata.namespace, p.metadata.name) for p in victims}
        return NodeInfo.build(self.node, [p for p in self.pods
                                          if (p.metadata.namespace, p.metadata.name) not in gone])

    def with_pod(self, pod: types_pb2.Pod) -> "NodeInfo":
        try:
            return NodeInfo(self.node, (*self.pods, pod), self.requested + pod_requests(pod),
                            self.non_zero_requested + pod_non_zero_requests(pod))
        except QuantityError:
            return NodeInfo(self.node, (*self.pods, pod), self.requested, self.non_zero_requested)


class Snapshot:
    """The cluster as one scheduling cycle sees it: nodes (in a fixed order) and namespaces' labels."""

    def __init__(self, nodes: Iterable[NodeInfo], namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
                 *, by_name: dict[str, NodeInfo] | None = None, have_images: bool | None = None,
                 have_pods_with_affinity: list[NodeInfo] | None = None):
        """by_name, have_images and have_pods_with_affinity may come precomputed (the scheduler's cache
        keeps them current per event); they must then be what the properties below would compute."""
        self.nodes: list[NodeInfo] = list(nodes)
        self.namespace_labels: Mapping[str, Mapping[str, str]] = namespace_labels or {}
        self.by_name: dict[str, NodeInfo] = {n.name: n for n in self.nodes} if by_name is None else by_name
        if have_images is not None:
            self.__dict__["have_images"] = have_images
        if have_pods_with_affinity is not None:
            self.__dict__["have_pods_with_affinity"] = have_pods_with_affinity

    def replace(self, info: NodeInfo) -> "Snapshot":
        """The same cluster with one node's pods changed (preemption's what-if)."""
        return Snapshot([info if n.name == info.name else n for n in self.nodes], self.namespace_labels)

    @functools.cached_property
    def have_images(self) -> bool:
        return any(n.node.status.images for n in self.nodes)

    @functools.cached_property
    def have_pods_with_affinity(self) -> list[NodeInfo]:
        return [n for n in self.nodes if n.pods_with_affinity]

    @functools.cached_property
    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        return [n for n in self.have_pods_with_affinity if n.pods_with_required_anti_affinity]


class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status: ...


class ScorePlugin(Protocol):
    name: str

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int: ...


def default_normalize(scores: dict[str, int], *, reverse: bool = False) -> None:
    """Kubernetes' DefaultNormalizeScore: scaled so the highest is 100 (reversed: the lowest)."""
    top = max(scores.values(), default=0)
    if top == 0:
        scores.update(dict.fromkeys(scores, MAX_SCORE if reverse else 0))
    elif reverse:
        for name, value in scores.items():
            scores[name] = MAX_SCORE - MAX_SCORE * value // top
    else:
        for name, value in scores.items():
            scores[name] = MAX_SCORE * value // top


def terminating(pod: types_pb2.Pod) -> bool:
    return pod.metadata.HasField("deletion_timestamp")


PodGroup = tuple[str, Mapping[str, str], int]   # (namespace, labels, how many of a node's pods have them)


def pod_groups(info: NodeInfo, *, live: bool = False) -> tuple[PodGroup, ...]:
    """The node's pods (`live`: not terminating) grouped by (namespace, labels), kept in the
    NodeInfo's memo: a selector is matched once per group, not once per pod. Equal labels are
    one dict across the cluster, so a cycle may cache a match by the dict's id."""
    memo_key = "live_pod_groups" if live else "pod_groups"
    groups = info.memo.get(memo_key)
    if groups is None:
        counts = collections.Counter((p.metadata.namespace, tuple(sorted(p.metadata.labels.items())))
                                     for p in info.pods if not (live and terminating(p)))
        groups = info.memo[memo_key] = tuple((ns, _interned_labels(ns, labels), n)
                                             for (ns, labels), n in counts.items())
    return groups


class MatchCache:
    """Whether a selector (an affinity term, a spread constraint) matches a (namespace, labels),
    asked once per distinct selector and labels dict in a cycle: pod_groups makes equal labels
    one dict, so its id is the key (the selectors and dicts live through the cycle)."""

    def __init__(self, test: Callable[[Any, str, Mapping[str, str]], bool]) -> None:
        self.test = test
        self.seen: dict[tuple[int, int], bool] = {}

    def __call__(self, selector: Any, ns: str, labels: Mapping[str, str]) -> bool:
        key = (id(selector), id(labels))
        found = self.seen.get(key)
        if found is None:
            found = self.seen[key] = self.test(selector, ns, labels)
        return found


_LABELS: dict[tuple[str, tuple[tuple[str, str], ...]], Mapping[str, str]] = {}


def _interned_labels(ns: str, labels: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
    found = _LABELS.get((ns, labels))
    if found is None:
        if len(_LABELS) > 50_000:
            _LABELS.clear()
        found = _LABELS[(ns, labels)] = dict(labels)
    return found


# name -> factory. Plugins register themselves in plugins/__init__.py.
REGISTRY: dict[str, Callable[[], object]] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return add


NO_NODE_AVAILABLE = "0/{} nodes are available"


def unschedulable_message(total_nodes: int, reasons_by_node: Mapping[str, Iterable[str]], *,
                          post_filter: str = "") -> str:
    """Kubernetes' FitError: "0/3 nodes are available: 1 Insufficient memory, 2 node(s) were not ready."
    (the "count reason" strings sorted as text), then the preemption's message, if any."""
    if total_nodes == 0:
        text = "0/0 nodes are available: no nodes registered."
    else:
        counts: dict[str, int] = {}
        for reasons in reasons_by_node.values():
            for reason in dict.fromkeys(reasons):
                counts[reason] = counts.get(reason, 0) + 1
        detail = ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))
        text = f"{NO_NODE_AVAILABLE.format(total_nodes)}: {detail}."
    if post_filter:
        text += f" {post_filter}"
    return text
