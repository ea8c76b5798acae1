"""The registry's hook for Services: the cluster IP and node ports a Service
holds are taken before it is stored and given back when it goes.

    create   take(None, svc)        clusterIP (given, or the next free one), nodePorts,
                                    healthCheckNodePort  -> stored, or give_back on failure
    update   take(old, new)         only what `new` holds that `old` did not
                                    -> stored: release what only `old` held; failed: give_back
    removed  release(held(svc))

Errors are Kubernetes' (field path and wording):
    spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: provided IP is already allocated
    spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated

`repair()` runs when the API server starts (before the first allocation is
served) and every few minutes: the bitmaps are made to agree with the
Services in the store, so a restart never hands out a value twice.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Callable

from google.protobuf.message import Message

from controlplane.api.errors import Invalid
from controlplane.services.allocation import RangeAllocator
from controlplane.store.interface import Unavailable
from controlplane.services.ranges import AllocationError, IpRange, NotInRange, PortRange, RangeFull
from skiff.api import kinds
from skiff.api.kinds import service as services

log = logging.getLogger("skiff.controlplane.services")

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
IP_ALLOCATIONS = "skiff-service-cluster-ips"
PORT_ALLOCATIONS = "skiff-service-node-ports"
REPAIR_INTERVAL_SECONDS = 180.0


def service_range_problems(cluster_ip_range: str, node_port_range: str, *, cluster_cidr: str = "",
                           node_cidr: str = "") -> list[str]:
    """What is wrong with the control plane's (and `skiff up`'s) service range flags: the service CIDR
    must parse and stay clear of the pod network (--cluster-cidr) and the nodes' link (--node-cidr)."""
    problems = []
    try:
        service_range = IpRange(cluster_ip_range)
        for flag, other in (("--cluster-cidr", cluster_cidr), ("--node-cidr", node_cidr)):
            try:
                if other and service_range.network.overlaps(ipaddress.ip_network(other)):
                    problems.append(f"--service-cluster-ip-range {cluster_ip_range}: overlaps {flag} {other}")
            except ValueError:
                pass   # the other flag's own check reports it
    except ValueError as exc:
        problems.append(f"--service-cluster-ip-range {cluster_ip_range!r}: {exc}")
    try:
        PortRange.parse(node_port_range)
    except ValueError as exc:
        problems.append(f"--service-node-port-range {exc}")
    return problems


@dataclass
class Taken:
    """What one write took, to give back if the write fails."""
    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


def held_ips(svc: Message) -> set[str]:
    if svc.spec.type == services.EXTERNAL_NAME:
        return set()
    return {ip for ip in ([*svc.spec.cluster_ips] or [svc.spec.cluster_ip]) if ip and ip != services.HEADLESS}


def held_ports(svc: Message) -> set[int]:
    ports = {p.node_port for p in svc.spec.ports if p.node_port}
    if svc.spec.health_check_node_port:
        ports.add(svc.spec.health_check_node_port)
    return ports


def needs_health_check_port(svc: Message) -> bool:
    return svc.spec.type == services.LOAD_BALANCER and svc.spec.external_traffic_policy == "Local"


class ServiceAllocations:
    kind_name = "Service"

    def __init__(self, *, store, cluster_ip_range: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE) -> None:
        self.store = store
        self.ips = RangeAllocator(store=store, name=IP_ALLOCATIONS, range_=IpRange(cluster_ip_range),
                                  held=lambda: self._held(held_ips))
        self.ports = RangeAllocator(store=store, name=PORT_ALLOCATIONS, range_=PortRange.parse(node_port_range),
                                    held=lambda: self._held(held_ports))
        self.repaired = asyncio.Event()

    @property
    def first_ip(self) -> str:
        """The range's first address: the `kubernetes` Service's."""
        return self.ips.range.value(0)

    @classmethod
    def ready(cls, *, store, **ranges: str) -> "ServiceAllocations":
        """Allocations over a store known to hold no Service yet (FakeApiClient's): no repair to wait for."""
        allocations = cls(store=store, **ranges)
        allocations.repaired.set()
        return allocations

    # ------------------------------------------------------------ the registry's hook

    async def take(self, old: Message | None, new: Message, *, dry_run: bool = False) -> Taken:
        """Allocate what `new` needs and `old` did not hold, filling in the values
        left for the server (in place). Invalid names the field; nothing is kept then."""
        if not self.repaired.is_set():
            try:
                await asyncio.wait_for(self.repaired.wait(), timeout=30)
            except asyncio.TimeoutError:
                raise Unavailable("the service IP and node port allocations are being repaired; try again") from None
        taken = Taken()
        try:
            await self._take_ip(old, new, taken, dry_run=dry_run)
            await self._take_ports(old, new, taken, dry_run=dry_run)
        except BaseException:
            if not dry_run:
                await self.give_back(taken)
            raise
        return taken if not dry_run else Taken()

    async def give_back(self, taken: Taken) -> None:
        await self.ips.release(taken.ips)
        await self.ports.release(taken.ports)

    async def stored(self, old: Message | None, new: Message) -> None:
        """`new` replaced `old` in the store: what only `old` held is free again."""
        if old is not None:
            await self.ips.release(held_ips(old) - held_ips(new))
            await self.ports.release(held_ports(old) - held_ports(new))

    async def removed(self, svc: Message) -> None:
        await self.ips.release(held_ips(svc))
        await self.ports.release(held_ports(svc))

    # ------------------------------------------------------------ repair

    async def _held(self, values: Callable[[Message], set]) -> set:
        """What the stored Services hold (by `values`: held_ips or held_ports)."""
        services_, _ = await self.store.list(kinds.kind_named("Service"))
        return set().union(*(values(s) for s in services_)) if services_ else set()

    async def repair(self) -> None:
        ips, ports = await self._held(held_ips), await self._held(held_ports)
        for allocator, values in ((self.ips, ips), (self.ports, ports)):
            marked, freed = await allocator.repair(values)
            if marked or freed:
                log.info("%s repaired: marked %s, freed %s", allocator.name, marked, freed)
        self.repaired.set()

    async def run_repairs(self, *, interval: float = REPAIR_INTERVAL_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.repair()
            except Exception as exc:  # the next round tries again
                log.warning("service allocation repair failed: %s", exc)

    # ------------------------------------------------------------ the values

    async def _take_ip(self, old: Message | None, new: Message, taken: Taken, *, dry_run: bool) -> None:
        spec = new.spec
        if spec.type == services.EXTERNAL_NAME or spec.cluster_ip == services.HEADLESS:
            return
        had = held_ips(old) if old is not None else set()
        if spec.cluster_ip and spec.cluster_ip in had:
            return
        try:
            if spec.cluster_ip:
                ip = str(await self.ips.allocate(spec.cluster_ip, dry_run=dry_run))
            else:
                ip = str(await self.ips.allocate_next(dry_run=dry_run))
        except RangeFull:
            raise Invalid("Internal error: failed to allocate a serviceIP: range is full",
                          field_path="spec.clusterIPs") from None
        except AllocationError as exc:
            raise Invalid(f'Service "{new.metadata.name}" is invalid: spec.clusterIPs: Invalid value: '
                          f'{services.go_list([spec.cluster_ip])}: failed to allocate IP {spec.cluster_ip}: {exc}',
                          field_path="spec.clusterIPs") from None
        taken.ips.append(ip)
        spec.cluster_ip = ip
        del spec.cluster_ips[:]
        spec.cluster_ips.append(ip)
        if not spec.ip_families:
            spec.ip_families.append("IPv4")
        if not spec.HasField("ip_family_policy"):
            spec.ip_family_policy = "SingleStack"

    async def _take_ports(self, old: Message | None, new: Message, taken: Taken, *, dry_run: bool) -> None:
        spec = new.spec
        had = held_ports(old) if old is not None else set()
        wanted = services.uses_node_ports(new)
        for i, port in enumerate(spec.ports):
            if port.node_port:
                if port.node_port in had:
                    continue
                await self._take_port(port.node_port, f"spec.ports[{i}].nodePort", new, taken, dry_run=dry_run)
            elif wanted:
                port.node_port = await self._take_port(None, f"spec.ports[{i}].nodePort", new, taken,
                                                       dry_run=dry_run)
        if needs_health_check_port(new):
            if spec.health_check_node_port and spec.health_check_node_port not in had:
                await self._take_port(spec.health_check_node_port, "spec.healthCheckNodePort", new, taken,
                                      dry_run=dry_run)
            elif not spec.health_check_node_port:
                spec.health_check_node_port = await self._take_port(None, "spec.healthCheckNodePort", new, taken,
                                                                    dry_run=dry_run)

    async def _take_port(self, port: int | None, path: str, svc: Message, taken: Taken, *, dry_run: bool) -> int:
        try:
            value = int(await (self.ports.allocate(port, dry_run=dry_run) if port
                               else self.ports.allocate_next(dry_run=dry_run)))
        except RangeFull:
            raise Invalid("Internal error: failed to allocate a nodePort: range is full", field_path=path) from None
        except (NotInRange, AllocationError) as exc:
            raise Invalid(f'Service "{svc.metadata.name}" is invalid: {path}: Invalid value: {port}: {exc}',
                          field_path=path) from None
        taken.ports.append(value)
        return value
