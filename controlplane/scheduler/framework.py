"""The scheduling framework: what a plugin is and what it returns.

Two extension points, as in kube-scheduler: a Filter says whether a pod can
run on a node (Status Success, or Unschedulable with a reason that ends up in
the pod's PodScheduled condition), a Score ranks the nodes that passed
(0-100, higher is better). Plugins are pure: they see the pod and a NodeInfo
snapshot (the node plus the pods already on it), never the API.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Protocol

from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError, cpu_millis, memory_bytes

MAX_SCORE = 100


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"  # the pod does not fit this node now; may later
    ERROR = "Error"                  # the plugin could not decide (bad data)


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @classmethod
    def success(cls) -> "Status":
        return cls()

    @classmethod
    def unschedulable(cls, *reasons: str) -> "Status":
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def error(cls, reason: str) -> "Status":
        return cls(Code.ERROR, (reason,))


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)


def _quantity(values: dict, name: str) -> int:
    text = values.get(name)
    if text is None:
        return 0
    return cpu_millis(text) if name == "cpu" else memory_bytes(text)


def pod_requests(pod: types_pb2.Pod) -> Resources:
    """What a pod asks for: the sum over its containers (the largest init
    container if that is more), each container's request defaulting to its
    limit as Kubernetes defaults it."""
    def container(c: types_pb2.Container) -> Resources:
        req, lim = dict(c.resources.requests), dict(c.resources.limits)
        return Resources(_quantity(req if "cpu" in req else lim, "cpu"),
                         _quantity(req if "memory" in req else lim, "memory"))
    total = Resources()
    for c in pod.spec.containers:
        total += container(c)
    for c in pod.spec.init_containers:
        ic = container(c)
        total = Resources(max(total.cpu_millis, ic.cpu_millis), max(total.memory_bytes, ic.memory_bytes))
    return total


@dataclass(frozen=True)
class NodeInfo:
    """A node and the pods counted against it (bound or assumed, not finished)."""
    node: types_pb2.Node
    pods: tuple[types_pb2.Pod, ...] = ()
    requested: Resources = field(default=Resources())

    @property
    def name(self) -> str:
        return self.node.metadata.name

    @property
    def allocatable(self) -> Resources:
        values = dict(self.node.status.allocatable) or dict(self.node.status.capacity)
        try:
            return Resources(_quantity(values, "cpu"), _quantity(values, "memory"))
        except QuantityError:
            return Resources()

    @property
    def allocatable_pods(self) -> int:
        values = dict(self.node.status.allocatable) or dict(self.node.status.capacity)
        try:
            return int(values.get("pods", "110"))
        except ValueError:
            return 110

    @classmethod
    def build(cls, node: types_pb2.Node, pods: list[types_pb2.Pod]) -> "NodeInfo":
        requested = Resources()
        for pod in pods:
            requested += pod_requests(pod)
        return cls(node=node, pods=tuple(pods), requested=requested)


class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status: ...


class ScorePlugin(Protocol):
    name: str

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int: ...


# name -> factory. Plugins register themselves in plugins/__init__.py.
REGISTRY: dict[str, Callable[[], object]] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return add


def unschedulable_message(total_nodes: int, reasons_by_node: dict[str, tuple[str, ...]]) -> str:
    """Kubernetes' summary: "0/3 nodes are available: 1 Insufficient memory, 2 node(s) were not ready."."""
    counts: dict[str, int] = {}
    for reasons in reasons_by_node.values():
        for reason in set(reasons):
            counts[reason] = counts.get(reason, 0) + 1
    if total_nodes == 0:
        return "0/0 nodes are available: no nodes registered."
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"0/{total_nodes} nodes are available: {detail}."
