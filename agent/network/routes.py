"""Routes to the other nodes' pods: the `host-gw` backend (flannel's name).

Every node's pods live in its podCIDR behind its own bridge. With host-gw a
node reaches another node's pods by a plain route, `podCIDR via nodeIP`, out
of the interface that holds its own node IP; the nodes must share that link
(one L2 segment: `skiff up --nodes N` gives them one). No encapsulation and
no NAT, so a pod sees its peer's pod IP.

    Node objects (informer) ──► desired_routes() ──► plan() ──► RouteTable
    {name, podCIDR, InternalIP}    {podCIDR: nodeIP}   add/del     replace/delete

`desired_routes` and `plan` are pure; a `RouteTable` is the port to the
kernel: `NetlinkRouteTable` (pyroute2, the main table) or `FakeRouteTable`
(beside it, for tests). Skiff's routes carry their own protocol number
(ROUTE_PROTOCOL, shown as `proto 95` by `ip route`), so `plan` only ever
replaces or deletes routes Skiff made, never one a person or another daemon
added, and a restarted agent finds its routes again.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from agent.network.types import NetworkError

ROUTE_PROTOCOL = 95   # rtm_protocol of Skiff's routes (unassigned in /etc/iproute2/rt_protos)
MAIN_TABLE = 254


@dataclass(frozen=True)
class NodeRoute:
    """What routing needs to know of one Node object."""
    name: str
    pod_cidr: str
    node_ip: str


def desired_routes(nodes: Iterable[NodeRoute], *, self_name: str, cluster_cidr: str) -> dict[str, str]:
    """podCIDR -> node IP for every other node with both, inside the cluster CIDR.

    A node without a podCIDR (not yet allocated) or without an address is
    left out until it has them; a CIDR outside the cluster CIDR is refused,
    so a wrong Node object can never route the host's own networks."""
    cluster = ipaddress.IPv4Network(cluster_cidr)
    out: dict[str, str] = {}
    for node in nodes:
        if node.name == self_name or not node.pod_cidr or not node.node_ip:
            continue
        try:
            cidr = ipaddress.IPv4Network(node.pod_cidr)
            ipaddress.IPv4Address(node.node_ip)
        except ValueError:
            continue
        if cidr.subnet_of(cluster):
            out[str(cidr)] = node.node_ip
    return out


@dataclass(frozen=True)
class RoutePlan:
    replace: dict[str, str]   # podCIDR -> node IP: new, or its gateway changed
    delete: list[str]         # podCIDRs whose node is gone

    def __bool__(self) -> bool:
        return bool(self.replace or self.delete)


def plan(*, desired: dict[str, str], current: dict[str, str]) -> RoutePlan:
    """What to change so that Skiff's routes (current) equal desired."""
    return RoutePlan(replace={cidr: gw for cidr, gw in sorted(desired.items()) if current.get(cidr) != gw},
                     delete=sorted(set(current) - set(desired)))


class RouteTable(Protocol):
    """Skiff's routes in the node's routing table. Each call is idempotent."""

    def list(self) -> dict[str, str]:
        """podCIDR -> gateway of every route Skiff made."""
        ...

    def replace(self, cidr: str, gateway: str) -> None: ...

    def delete(self, cidr: str) -> None: ...


def apply(table: RouteTable, route_plan: RoutePlan) -> None:
    for cidr in route_plan.delete:
        table.delete(cidr)
    for cidr, gateway in route_plan.replace.items():
        table.replace(cidr, gateway)


def sync(table: RouteTable, desired: dict[str, str]) -> RoutePlan:
    """Make Skiff's routes equal desired; returns what was changed."""
    route_plan = plan(desired=desired, current=table.list())
    apply(table, route_plan)
    return route_plan


class NetlinkRouteTable:
    """Routes in the main table of the agent's network namespace, out of `interface`."""

    def __init__(self, *, interface: str) -> None:
        self.interface = interface

    def list(self) -> dict[str, str]:
        from agent.network.links import _iproute
        out = {}
        with _iproute() as ipr:
            for route in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE, proto=ROUTE_PROTOCOL):
                if route["proto"] != ROUTE_PROTOCOL:
                    continue
                out[f"{route.get('RTA_DST')}/{route['dst_len']}"] = route.get("RTA_GATEWAY") or ""
        return out

    def replace(self, cidr: str, gateway: str) -> None:
        from agent.network.links import NetlinkError, _index, _iproute
        with _iproute() as ipr:
            index = _index(ipr, self.interface)
            if index is None:
                raise NetworkError(f"interface {self.interface} is gone: cannot route {cidr} via {gateway}")
            try:
                ipr.route("replace", dst=cidr, gateway=gateway, oif=index, proto=ROUTE_PROTOCOL,
                          table=MAIN_TABLE)
            except NetlinkError as exc:
                raise NetworkError(f"RTM_NEWROUTE {cidr} via {gateway} dev {self.interface} failed: {exc}") from exc

    def delete(self, cidr: str) -> None:
        import errno

        from agent.network.links import NetlinkError, _iproute
        with _iproute() as ipr:
            try:
                ipr.route("del", dst=cidr, proto=ROUTE_PROTOCOL, table=MAIN_TABLE)
            except NetlinkError as exc:
                if exc.code != errno.ESRCH:
                    raise NetworkError(f"RTM_DELROUTE {cidr} failed: {exc}") from exc


@dataclass
class FakeRouteTable:
    """An in-memory RouteTable: `routes` is Skiff's, `foreign` someone else's (never touched)."""
    routes: dict[str, str] = field(default_factory=dict)
    foreign: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def list(self) -> dict[str, str]:
        return dict(self.routes)

    def replace(self, cidr: str, gateway: str) -> None:
        self.calls.append(("replace", cidr, gateway))
        self.routes[cidr] = gateway

    def delete(self, cidr: str) -> None:
        self.calls.append(("delete", cidr))
        self.routes.pop(cidr, None)
