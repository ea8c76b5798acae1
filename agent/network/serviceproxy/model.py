"""What the service proxy programs, as plain data, and which endpoints each path uses.

A `ServicePort` is one port of one Service together with the endpoints the
EndpointSlices give it; the proxy renders one set of chains per ServicePort
(agent/network/serviceproxy/render.py). `pick_endpoints` is kube-proxy's
endpoint selection (pkg/proxy/topology.go, CategorizeEndpoints): ready
endpoints, or when none is ready the serving-and-terminating ones (so a
rolling update does not drop connections while the last pods finish), and
with a `Local` traffic policy only the ones on this node.
"""
from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str            # the Service port's name ("" for a lone unnamed port)
    protocol: str             # "tcp", "udp" or "sctp"
    port: int                 # the Service port (on the ClusterIP, external and LoadBalancer IPs)
    cluster_ips: tuple[str, ...] = ()
    node_port: int = 0        # 0: none
    external_ips: tuple[str, ...] = ()   # spec.externalIPs and status.loadBalancer.ingress[].ip
    affinity_seconds: int = 0            # sessionAffinity ClientIP: its timeout; 0: none
    external_local: bool = False         # externalTrafficPolicy: Local
    internal_local: bool = False         # internalTrafficPolicy: Local
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        """namespace/name/protocol/port-name, as kube-proxy names a service port."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or 'p' + str(self.port)}"


@dataclass(frozen=True)
class NodeView:
    """This node as the proxy needs it."""
    name: str
    node_ips: tuple[str, ...] = ()       # where NodePorts (and LoadBalancer IPs) are served
    cluster_cidr: str = ""               # pod network; ClusterIP traffic from outside it is masqueraded
    mark: int = 0x2000                   # the packet-mark bit "masquerade me"
    # This node's address on the pod network (its bridge's gateway): the source of
    # masqueraded traffic to pods, so another node's fence (decision 9) sees a
    # pod-network address; "" masquerades to the outgoing interface's address.
    pod_gateway: str = ""
    # With both: traffic to the service CIDR arriving by any other interface than
    # the pod bridge is left alone in prerouting. Clusters side by side on one
    # host (test clusters, each with its own bridge and table) hand out the
    # same ClusterIPs; each table answers its own pods only.
    pod_interface: str = ""
    service_cidr: str = ""


def _usable(endpoints: list[Endpoint]) -> list[Endpoint]:
    ready = [e for e in endpoints if e.ready]
    if ready:
        return ready
    return [e for e in endpoints if e.serving and e.terminating]


def pick_endpoints(port: ServicePort, *, node_name: str) -> tuple[list[Endpoint], list[Endpoint]]:
    """(cluster endpoints, local endpoints) of a service port on node_name.

    Cluster endpoints serve the ClusterIP (only this node's with
    internalTrafficPolicy Local); local endpoints serve external traffic
    (NodePort, LoadBalancer, externalIPs) with externalTrafficPolicy Local.
    Each list is sorted by (ip, port) so a render is deterministic.
    """
    every = sorted(port.endpoints, key=lambda e: (e.ip, e.port))
    local = _usable([e for e in every if e.node_name == node_name])
    cluster = local if port.internal_local else _usable(every)
    return cluster, local
