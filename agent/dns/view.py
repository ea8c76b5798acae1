"""What the resolver reads: the cluster's Services and their endpoints, as plain data.

The resolver (agent.dns.resolver) never sees a protobuf message or an
informer: it asks a `ClusterView` for a Service by name or by IP and for a
Service's endpoints. `InformerView` (agent.dns.informerview) answers from the
agent's informer caches of Services and EndpointSlices; `StaticView` below is
the test double, filled by hand.

Endpoints are what CoreDNS's kubernetes plugin serves: an address with its
`hostname` (set by the EndpointSlice controller for a pod with
`spec.hostname` and `spec.subdomain` equal to the Service's name) and its
ready condition. Not-ready endpoints are kept here; the resolver drops them
(a Service with `publishNotReadyAddresses` has them marked ready already by
the EndpointSlice controller, as in Kubernetes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str   # "TCP", "UDP", "SCTP"
    port: int


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    type: str = "ClusterIP"                  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ips: tuple[str, ...] = ()        # empty (or "None"): headless
    ports: tuple[Port, ...] = ()
    external_name: str = ""

    @property
    def headless(self) -> bool:
        return self.type != "ExternalName" and not [ip for ip in self.cluster_ips if ip and ip != "None"]

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(ip for ip in self.cluster_ips if ip and ip != "None")


@dataclass(frozen=True)
class EndpointInfo:
    addresses: tuple[str, ...]
    ready: bool = True
    hostname: str = ""
    ports: tuple[Port, ...] = ()   # the slice's ports (target ports, by the Service port's name)


class ClusterView(Protocol):
    """Read-only answers from caches; each call is cheap (no I/O). `generation` changes
    whenever an answer may have (the server's answer cache is keyed by it)."""
    generation: int

    def service(self, namespace: str, name: str) -> ServiceInfo | None: ...

    def endpoints(self, namespace: str, name: str) -> list[EndpointInfo]: ...

    def namespaces(self) -> set[str]: ...

    def service_by_ip(self, ip: str) -> ServiceInfo | None: ...

    def endpoint_by_ip(self, ip: str) -> tuple[ServiceInfo, EndpointInfo] | None:
        """A headless Service's endpoint with this address (for PTR)."""
        ...


@dataclass
class StaticView:
    """A ClusterView over lists given by hand (tests)."""
    services: list[ServiceInfo] = field(default_factory=list)
    endpoint_lists: dict[tuple[str, str], list[EndpointInfo]] = field(default_factory=dict)
    extra_namespaces: set[str] = field(default_factory=set)
    generation: int = 0   # bump after changing the lists

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        return next((s for s in self.services if (s.namespace, s.name) == (namespace, name)), None)

    def endpoints(self, namespace: str, name: str) -> list[EndpointInfo]:
        return list(self.endpoint_lists.get((namespace, name), []))

    def namespaces(self) -> set[str]:
        return {s.namespace for s in self.services} | set(self.extra_namespaces)

    def service_by_ip(self, ip: str) -> ServiceInfo | None:
        return next((s for s in self.services if ip in s.ips), None)

    def endpoint_by_ip(self, ip: str) -> tuple[ServiceInfo, EndpointInfo] | None:
        return _endpoint_by_ip(self.services, self.endpoints, ip)


def _endpoint_by_ip(services: Iterable[ServiceInfo], endpoints, ip: str) -> tuple[ServiceInfo, EndpointInfo] | None:
    for svc in services:
        if not svc.headless:
            continue
        for ep in endpoints(svc.namespace, svc.name):
            if ip in ep.addresses and ep.ready:
                return svc, ep
    return None
