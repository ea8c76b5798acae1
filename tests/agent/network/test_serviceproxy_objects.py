"""Service + EndpointSlice messages -> the proxy's ServicePorts (Kubernetes' field semantics)."""
from __future__ import annotations

from agent.network.serviceproxy.model import Endpoint
from agent.network.serviceproxy.objects import service_ports
from proto.skiff.v1 import services_pb2


def svc(**spec) -> services_pb2.Service:
    s = services_pb2.Service()
    s.metadata.namespace, s.metadata.name = "shop", "web"
    s.spec.cluster_ip = "10.96.0.10"
    s.spec.cluster_ips.append("10.96.0.10")
    port = s.spec.ports.add()
    port.name, port.protocol, port.port, port.target_port = "http", "TCP", 80, "http"
    for key, value in spec.items():
        setattr(s.spec, key, value)
    return s


def endpoint_slice(*endpoints, port_name="http", port=8080) -> services_pb2.EndpointSlice:
    es = services_pb2.EndpointSlice(address_type="IPv4")
    es.metadata.namespace, es.metadata.name = "shop", "web-abcde"
    es.metadata.labels["kubernetes.io/service-name"] = "web"
    p = es.ports.add()
    p.name, p.protocol, p.port = port_name, "TCP", port
    for ip, conditions, node in endpoints:
        ep = es.endpoints.add()
        ep.addresses.append(ip)
        ep.node_name = node
        for key, value in conditions.items():
            setattr(ep.conditions, key, value)
    return es


def test_a_cluster_ip_service_with_its_slice_endpoints():
    ports = service_ports(svc(), [endpoint_slice(("10.244.1.5", {"ready": True}, "n1"),
                                                 ("10.244.2.7", {}, "n2"))])
    assert len(ports) == 1
    p = ports[0]
    assert (p.key, p.cluster_ips, p.port, p.node_port) == ("shop/web/tcp/http", ("10.96.0.10",), 80, 0)
    # An unset ready condition is ready (Kubernetes: nil means true).
    assert p.endpoints == (Endpoint("10.244.1.5", 8080, True, True, False, "n1"),
                           Endpoint("10.244.2.7", 8080, True, True, False, "n2"))


def test_terminating_endpoints_keep_their_conditions():
    p = service_ports(svc(), [endpoint_slice(
        ("10.244.1.5", {"ready": False, "serving": True, "terminating": True}, "n1"))])[0]
    assert p.endpoints == (Endpoint("10.244.1.5", 8080, False, True, True, "n1"),)


def test_node_port_load_balancer_policies_and_affinity():
    s = svc(type="LoadBalancer", session_affinity="ClientIP", external_traffic_policy="Local",
            internal_traffic_policy="Local")
    s.spec.ports[0].node_port = 30080
    s.status.load_balancer.ingress.add(ip="10.213.0.2")
    p = service_ports(s, [])[0]
    assert (p.node_port, p.external_ips, p.affinity_seconds) == (30080, ("10.213.0.2",), 10800)
    assert p.external_local and p.internal_local
    s.spec.session_affinity_config.client_ip.timeout_seconds = 60
    assert service_ports(s, [])[0].affinity_seconds == 60


def test_headless_external_name_and_unmatched_ports_get_nothing():
    headless = svc()
    headless.spec.cluster_ip = "None"
    del headless.spec.cluster_ips[:]
    headless.spec.cluster_ips.append("None")
    assert service_ports(headless, []) == []
    assert service_ports(svc(type="ExternalName", external_name="example.org"), []) == []
    # A slice port of another name serves no endpoint to this Service port.
    assert service_ports(svc(), [endpoint_slice(("10.244.1.5", {}, "n1"), port_name="metrics")])[0].endpoints == ()
