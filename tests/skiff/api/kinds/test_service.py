"""Service, Endpoints and EndpointSlice strategies: Kubernetes' defaults and
checks with their field paths, kubectl's columns and describe."""
from datetime import datetime, timezone

from google.protobuf import timestamp_pb2

from proto.skiff.v1 import services_pb2
from skiff.api import kinds, manifest, printers
from skiff.api.kinds import endpoints as endpoints_kind
from skiff.api.kinds import endpointslice as slice_kind
from skiff.api.kinds import service as service_kind
from skiff.api.kinds.strategy import DescribeContext

S = service_kind.KIND.strategy
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SIMPLE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""


def svc(*ports: dict, **spec) -> services_pb2.Service:
    s = services_pb2.Service()
    s.metadata.name = "web"
    for p in ports:
        s.spec.ports.add(**p)
    for key, value in spec.items():
        if isinstance(value, dict):
            getattr(s.spec, key).update(value)
        elif isinstance(value, list):
            getattr(s.spec, key).extend(value)
        else:
            setattr(s.spec, key, value)
    return S.defaults(s)


def errors(obj) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in S.validate(obj)]


def test_the_docs_simple_service_parses_defaults_and_prints_as_kubernetes():
    [item] = manifest.parse_text(SIMPLE, source="simple-service.yaml")
    assert not item.errors
    obj = S.defaults(item.obj)
    assert S.validate(obj) == []
    spec = printers.to_dict(obj)["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 9376}]
    assert spec["internalTrafficPolicy"] == "Cluster"


def test_defaults_protocol_target_port_affinity_timeout():
    s = svc({"port": 80}, {"port": 443, "name": "https", "target_port": "tls"}, session_affinity="ClientIP",
            type="NodePort")
    assert [(p.protocol, p.target_port) for p in s.spec.ports] == [("TCP", "80"), ("TCP", "tls")]
    assert s.spec.session_affinity_config.client_ip.timeout_seconds == 10800
    assert s.spec.external_traffic_policy == "Cluster"


def test_ports_rules_with_field_paths():
    s = svc({"port": 80, "name": "http"}, {"port": 81}, {"port": 80, "name": "http"},
            {"port": 70000, "name": "big", "protocol": "FOO"}, {"port": 82, "name": "t", "target_port": "no_way"})
    got = errors(s)
    assert ("spec.ports[1].name", "Required value") in got
    assert ("spec.ports[2].name", 'Duplicate value: "http"') in got
    assert ("spec.ports[3].port", "Invalid value: 70000: must be between 1 and 65535, inclusive") in got
    assert ("spec.ports[3].protocol", 'Unsupported value: "FOO": supported values: "SCTP", "TCP", "UDP"') in got
    assert any(p == "spec.ports[2]" and m.startswith("Duplicate value") for p, m in got)
    assert ("spec.ports[4].targetPort", 'Invalid value: "no_way": must contain only alpha-numeric characters '
                                        '(a-z, 0-9), and hyphens (-)') in got


def test_a_port_name_invalid_and_repeated_gets_both_errors_as_on_kubernetes():
    got = errors(svc({"port": 80, "name": "Web"}, {"port": 81, "name": "Web"}))
    invalid = ("Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric "
               "characters or '-', and must start and end with an alphanumeric character")
    assert got == [("spec.ports[0].name", invalid), ("spec.ports[1].name", invalid),
                   ("spec.ports[1].name", 'Duplicate value: "Web"')]


def test_one_unnamed_port_is_fine_and_ports_are_required_but_for_headless_and_external_name():
    assert errors(svc({"port": 80})) == []
    assert errors(svc()) == [("spec.ports", "Required value")]
    assert errors(svc(cluster_ip="None")) == []
    assert errors(svc(type="ExternalName", external_name="db.example.com")) == []


def test_external_name_must_be_a_dns_name():
    [(path, message)] = errors(svc(type="ExternalName", external_name="not a name"))
    assert path == "spec.externalName" and "RFC 1123 subdomain" in message
    assert errors(svc(type="ExternalName")) == [("spec.externalName", "Required value")]
    assert errors(svc(type="ExternalName", external_name="db.example.com.")) == []


def test_node_port_only_for_node_port_and_load_balancer():
    assert errors(svc({"port": 80, "node_port": 30080})) == [
        ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")]
    assert errors(svc({"port": 80, "node_port": 30080}, type="NodePort")) == []
    assert errors(svc({"port": 80, "name": "a", "node_port": 30080}, {"port": 81, "name": "b", "node_port": 30080},
                      type="NodePort")) == [("spec.ports[1].nodePort", "Duplicate value: 30080")]


def test_cluster_ip_must_be_an_ip_and_headless_is_not_for_node_ports():
    assert errors(svc({"port": 80}, cluster_ip="10.96.0.300")) == [
        ("spec.clusterIPs[0]", 'Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
                               '2001:db8::ffff)')]
    assert errors(svc({"port": 80}, cluster_ip="None", type="NodePort")) == [
        ("spec.clusterIPs[0]", "Invalid value: \"None\": may not be set to 'None' for NodePort services")]


def test_type_affinity_and_traffic_policy_enumerations():
    assert errors(svc({"port": 80}, type="Magic")) == [
        ("spec.type", 'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
                      '"NodePort"')]
    bad = svc({"port": 80}, session_affinity="ClientIP")
    bad.spec.session_affinity_config.client_ip.timeout_seconds = 90000
    assert errors(bad) == [("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            "Invalid value: 90000: must be greater than 0 and less than 86400")]
    assert errors(svc({"port": 80}, external_traffic_policy="Local")) == [
        ("spec.externalTrafficPolicy", "Invalid value: \"Local\": may only be set when `type` is 'NodePort' or "
                                       "'LoadBalancer'")]


def test_cluster_ip_may_not_change_once_set():
    old = svc({"port": 80}, cluster_ip="10.96.0.10")
    new = svc({"port": 80}, cluster_ip="10.96.0.11")
    assert [(e.path, e.message) for e in S.validate_update(old, new)] == [
        ("spec.clusterIPs[0]", 'Invalid value: []string{"10.96.0.11"}: may not change once set')]
    assert S.validate_update(old, svc({"port": 80}, cluster_ip="10.96.0.10")) == []


def _stamp() -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(datetime(2025, 12, 31, 23, 0, tzinfo=timezone.utc))
    return t


def test_columns_as_kubectl():
    s = svc({"port": 80, "name": "http", "node_port": 30080}, {"port": 443, "name": "https", "protocol": "UDP"},
            type="LoadBalancer", cluster_ip="10.96.0.10", selector={"app": "web"})
    s.metadata.creation_timestamp.CopyFrom(_stamp())
    assert S.columns(wide=True) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert S.row(s, wide=True, now=NOW) == ["web", "LoadBalancer", "10.96.0.10", "<pending>",
                                            "80:30080/TCP,443/UDP", "60m", "app=web"]
    s.status.load_balancer.ingress.add(ip="10.213.0.2")
    assert S.row(s, wide=False, now=NOW)[3] == "10.213.0.2"
    assert S.row(svc(type="ExternalName", external_name="db.example.com"), wide=False, now=NOW)[1:5] == [
        "ExternalName", "<none>", "db.example.com", "<none>"]


def test_endpoints_and_endpointslice_columns():
    ep = services_pb2.Endpoints()
    ep.metadata.name = "web"
    subset = ep.subsets.add()
    subset.ports.add(port=8080)
    for i in range(5):
        subset.addresses.add(ip=f"10.244.0.{i + 1}")
    subset.not_ready_addresses.add(ip="10.244.0.9")
    assert endpoints_kind.KIND.strategy.row(ep, wide=False, now=NOW)[:2] == [
        "web", "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 2 more..."]
    sl = services_pb2.EndpointSlice(address_type="IPv4")
    sl.metadata.name = "web-abcde"
    sl.ports.add(port=8080, name="", protocol="TCP")
    sl.endpoints.add(addresses=["10.244.0.1"])
    st = slice_kind.KIND.strategy
    assert st.columns(wide=False) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert st.row(sl, wide=False, now=NOW)[:4] == ["web-abcde", "IPv4", "8080", "10.244.0.1"]
    assert kinds.kind_for_resource("ep") is endpoints_kind.KIND and kinds.kind_for_resource("svc") is service_kind.KIND


def test_endpointslice_rules():
    st = slice_kind.KIND.strategy
    sl = st.defaults(services_pb2.EndpointSlice(address_type="IPv4"))
    sl.metadata.name = "web-abcde"
    sl.endpoints.add(addresses=["fe80::1"])
    sl.endpoints.add()
    sl.ports.add(name="http", port=80)
    sl.ports.add(name="http", port=0)
    got = [(e.path, e.message) for e in st.validate(sl)]
    assert ("endpoints[0].addresses[0]", 'Invalid value: "fe80::1": must be an IPv4 address') in got
    assert ("endpoints[1].addresses", "Required value: must contain at least 1 address") in got
    assert ("ports[1].name", 'Duplicate value: "http"') in got
    assert ("ports[1].port", "Invalid value: 0: must be between 1 and 65535, inclusive") in got
    bad = services_pb2.EndpointSlice(address_type="IPv5")
    bad.metadata.name = "x"
    assert [(e.path, e.message) for e in st.validate(bad)] == [
        ("addressType", 'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"')]


def test_describe_service_as_kubectl():
    s = svc({"port": 80, "target_port": "9376"}, cluster_ip="10.96.0.10", selector={"app": "web"})
    s.metadata.namespace = "default"
    ep = services_pb2.Endpoints()
    ep.subsets.add().addresses.add(ip="10.244.0.5")
    ep.subsets[0].ports.add(port=9376, protocol="TCP")
    text = S.describe(s, DescribeContext(events=[], now=NOW, related={"Endpoints": [ep]}))
    lines = text.splitlines()
    assert "Selector:                 app=web" in lines
    assert "IP:                       10.96.0.10" in lines
    assert "Port:                     <unset>  80/TCP" in lines
    assert "TargetPort:               9376/TCP" in lines
    assert "Endpoints:                10.244.0.5:9376" in lines
    assert "Session Affinity:         None" in lines
    assert lines[-1] == "Events:  <none>"


def test_the_docs_service_manifests_are_valid():
    from pathlib import Path
    docs = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"
    found = []
    for path in ("service/simple-service.yaml", "service/networking/nginx-svc.yaml", "application/nginx-app.yaml"):
        for item in manifest.load([str(docs / path)]):
            assert not item.errors, (path, item.errors)
            if isinstance(item.obj, services_pb2.Service):
                obj = S.defaults(item.obj)
                assert S.validate(obj) == [], path
                found.append((obj.metadata.name, obj.spec.type, obj.spec.ports[0].target_port))
    assert found == [("my-service", "ClusterIP", "9376"), ("my-nginx", "ClusterIP", "80"),
                     ("my-nginx-svc", "LoadBalancer", "80")]
