"""v1 Service + discovery.k8s.io/v1 EndpointSlices -> the proxy's ServicePorts (pure).

Read by Kubernetes' field names: spec.type, clusterIP(s), ports[] (name,
protocol, port, nodePort), externalIPs, sessionAffinity(+Config),
external/internalTrafficPolicy, status.loadBalancer.ingress[].ip; a slice's
`kubernetes.io/service-name` label, addressType, endpoints[] (addresses,
conditions, nodeName) and ports[] (matched to the Service's ports by name and
protocol, as kube-proxy does). ExternalName and headless Services, and
anything not IPv4, get no rules (kube-proxy's behaviour: nothing to proxy).
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from agent.network.serviceproxy.model import PROTOCOLS, Endpoint, ServicePort

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800   # Kubernetes' default ClientIP timeout: three hours


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _flag(msg, name: str, default: bool) -> bool:
    """An optional bool condition: unset means `default` (Kubernetes: nil ready is true)."""
    try:
        return getattr(msg, name) if msg.HasField(name) else default
    except ValueError:   # a plain (non-optional) field
        return bool(getattr(msg, name))


def _slice_endpoints(slices: Iterable, *, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    seen: dict[tuple[str, int], Endpoint] = {}
    for eps in slices:
        if eps.address_type not in ("IPv4", ""):
            continue
        numbers = [p.port for p in eps.ports
                   if (p.name or "") == port_name and (p.protocol or "TCP").lower() == protocol and p.port]
        if not numbers:
            continue
        for ep in eps.endpoints:
            if not ep.addresses or not _ipv4(ep.addresses[0]):
                continue
            c = ep.conditions
            ready = _flag(c, "ready", True)
            endpoint = Endpoint(ip=ep.addresses[0], port=numbers[0], ready=ready,
                                serving=_flag(c, "serving", ready), terminating=_flag(c, "terminating", False),
                                node_name=ep.node_name or "")
            seen.setdefault((endpoint.ip, endpoint.port), endpoint)
    return tuple(seen.values())


def service_ports(service, slices: Iterable) -> list[ServicePort]:
    """The ServicePorts of one Service, with the endpoints its slices give each port."""
    spec = service.spec
    if spec.type == "ExternalName":
        return []
    cluster_ips = tuple(ip for ip in (spec.cluster_ips or [spec.cluster_ip]) if _ipv4(ip))
    if not cluster_ips:
        return []   # headless ("None"), or not allocated yet
    external = [ip for ip in spec.external_ips if _ipv4(ip)]
    if spec.type == "LoadBalancer":
        external += [i.ip for i in service.status.load_balancer.ingress if _ipv4(i.ip)]
    affinity = 0
    if spec.session_affinity == "ClientIP":
        cfg = spec.session_affinity_config.client_ip
        affinity = cfg.timeout_seconds if cfg.HasField("timeout_seconds") and cfg.timeout_seconds > 0 \
            else DEFAULT_AFFINITY_SECONDS
    slices = list(slices)
    out = []
    for p in spec.ports:
        protocol = (p.protocol or "TCP").lower()
        if protocol not in PROTOCOLS or not p.port:
            continue
        out.append(ServicePort(
            namespace=service.metadata.namespace or "default", name=service.metadata.name,
            port_name=p.name, protocol=protocol, port=p.port, cluster_ips=cluster_ips,
            node_port=p.node_port if spec.type in ("NodePort", "LoadBalancer") else 0,
            external_ips=tuple(dict.fromkeys(external)), affinity_seconds=affinity,
            external_local=spec.external_traffic_policy == "Local",
            internal_local=spec.internal_traffic_policy == "Local",
            endpoints=_slice_endpoints(slices, port_name=p.name, protocol=protocol)))
    return out
