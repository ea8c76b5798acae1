"""A ClusterView over the agent's informer caches of Services and EndpointSlices.

One cluster-wide informer per kind from the agent's SharedInformerFactory
(the same ones the service proxy reads: one watch each per node). Every
answer is read from the caches at query time, so a Service or endpoint
change is seen by the next query with no rebuild step; the ClusterIP index
for PTR and the set of namespaces are the derived structures, rebuilt lazily
when the Service cache changed (an informer handler marks them stale and
bumps `generation`, which the server's answer cache is keyed by).

The messages are read by Kubernetes' field names (v1 Service,
discovery.k8s.io/v1 EndpointSlice): spec.type, spec.clusterIP(s),
spec.ports[].name/protocol/port, spec.externalName; a slice's
`kubernetes.io/service-name` label, endpoints[].addresses/conditions.ready/
hostname and ports[].
"""
from __future__ import annotations

from google.protobuf.message import Message

from agent.dns.view import EndpointInfo, Port, ServiceInfo, _endpoint_by_ip
from skiff.controller import Informer

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service_info(svc: Message) -> ServiceInfo:
    spec = svc.spec
    ips = tuple(spec.cluster_ips) or ((spec.cluster_ip,) if spec.cluster_ip else ())
    return ServiceInfo(namespace=svc.metadata.namespace or "default", name=svc.metadata.name,
                       type=spec.type or "ClusterIP", cluster_ips=ips,
                       ports=tuple(Port(p.name, p.protocol or "TCP", p.port) for p in spec.ports),
                       external_name=spec.external_name)


def endpoint_infos(eps: Message) -> list[EndpointInfo]:
    ports = tuple(Port(p.name, p.protocol or "TCP", p.port) for p in eps.ports)
    out = []
    for ep in eps.endpoints:
        conditions = ep.conditions
        # An unset ready condition means ready (Kubernetes: "nil should be interpreted as true").
        ready = conditions.ready if conditions.HasField("ready") else True
        out.append(EndpointInfo(addresses=tuple(ep.addresses), ready=ready, hostname=ep.hostname, ports=ports))
    return out


class InformerView:
    def __init__(self, *, services: Informer, slices: Informer) -> None:
        self.services = services
        self.slices = slices
        self._by_ip: dict[str, tuple[str, str]] | None = None
        self._namespaces: set[str] | None = None
        self.generation = 0
        services.add_handler(self._stale)
        slices.add_handler(self._changed)

    def _stale(self, _key) -> None:
        self._by_ip = self._namespaces = None
        self.generation += 1

    def _changed(self, _key) -> None:
        self.generation += 1

    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        svc = self.services.get((namespace, name))
        return service_info(svc) if svc is not None else None

    def endpoints(self, namespace: str, name: str) -> list[EndpointInfo]:
        out: list[EndpointInfo] = []
        for eps in self.slices.lister.with_label(SERVICE_NAME_LABEL, name):
            if eps.metadata.namespace == namespace and eps.address_type != "FQDN":
                out += endpoint_infos(eps)
        return out

    def namespaces(self) -> set[str]:
        if self._namespaces is None:
            self._namespaces = {key[0] for key in self.services.keys()}
        return self._namespaces

    def service_by_ip(self, ip: str) -> ServiceInfo | None:
        if self._by_ip is None:
            index: dict[str, tuple[str, str]] = {}
            for svc in self.services.list():
                for address in service_info(svc).ips:
                    index[address] = (svc.metadata.namespace, svc.metadata.name)
            self._by_ip = index
        key = self._by_ip.get(ip)
        return self.service(*key) if key is not None else None

    def endpoint_by_ip(self, ip: str) -> tuple[ServiceInfo, EndpointInfo] | None:
        return _endpoint_by_ip((service_info(s) for s in self.services.list()), self.endpoints, ip)
