"""NodePorts: a pod fits a node only if none of its hostPorts is already taken
there, Kubernetes' rule: two uses of a port conflict when they have the same
protocol and port and the same hostIP, or either hostIP is 0.0.0.0 (every
address); an empty hostIP means 0.0.0.0 and an empty protocol TCP. So a
Deployment publishing hostPort 5000 spreads one pod per node instead of
binding a second pod to a node whose port is held (its agent could not start it).
"""
from __future__ import annotations

from typing import Iterable, Iterator

from controlplane.scheduler.framework import SKIP, NodeInfo, Status, register
from proto.skiff.v1 import types_pb2

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"

HostPort = tuple[str, str, int]   # (hostIP, protocol, hostPort), defaults filled in


def host_ports(pod: types_pb2.Pod) -> Iterator[HostPort]:
    """The pod's hostPorts: its app containers' and its sidecars' (an init container
    that restarts always runs beside them and holds its ports as long)."""
    containers = [*pod.spec.containers,
                  *(c for c in pod.spec.init_containers if c.restart_policy == "Always")]
    for container in containers:
        for port in container.ports:
            if port.host_port > 0:
                yield port.host_ip or ANY_IP, port.protocol or "TCP", port.host_port


def conflicts(wanted: HostPort, used: Iterable[HostPort]) -> bool:
    ip, protocol, port = wanted
    return any(protocol == p and port == n and (ip == i or ANY_IP in (ip, i)) for i, p, n in used)


def fits(pod: types_pb2.Pod, node: NodeInfo) -> bool:
    wanted = list(host_ports(pod))
    if not wanted:
        return True
    used = [hp for other in node.pods for hp in host_ports(other)]
    return not any(conflicts(hp, used) for hp in wanted)


@register("NodePorts")
class NodePorts:
    def __init__(self) -> None:
        self.wanted: list[HostPort] | None = None

    def pre_filter(self, pod: types_pb2.Pod, snapshot: object) -> Status | None:
        self.wanted = list(host_ports(pod))
        return None if self.wanted else SKIP

    def filter(self, pod: types_pb2.Pod, node: NodeInfo) -> Status:
        if self.wanted is None:
            self.wanted = list(host_ports(pod))   # once per cycle
        if not self.wanted:
            return Status.success()
        used = [hp for other in node.pods for hp in host_ports(other)]
        ok = not any(conflicts(hp, used) for hp in self.wanted)
        return Status.success() if ok else Status.unschedulable(REASON)
