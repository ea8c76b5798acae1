"""The service proxy's renderer: Services and endpoints in, nft script text out (no kernel)."""
from __future__ import annotations

from agent.network.serviceproxy.model import Endpoint, NodeView, ServicePort, pick_endpoints
from agent.network.serviceproxy.render import (
    NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, SERVICE_IPS, SERVICE_NODEPORTS, external_chain, render_diff,
    render_full, render_unit, render_units, service_chain,
)

NODE = NodeView(name="node-1", node_ips=("10.213.0.2",), cluster_cidr="10.244.0.0/16")


def port(name="web", *, endpoints=(), **kw) -> ServicePort:
    fields = dict(namespace="default", name=name, port_name="http", protocol="tcp", port=80,
                  cluster_ips=("10.96.0.10",))
    fields.update(kw)
    return ServicePort(endpoints=tuple(endpoints), **fields)


def ep(ip, *, node="node-1", ready=True, serving=True, terminating=False, port=8080) -> Endpoint:
    return Endpoint(ip=ip, port=port, ready=ready, serving=serving, terminating=terminating, node_name=node)


def test_cluster_ip_spreads_evenly_over_ready_endpoints():
    p = port(endpoints=[ep("10.244.1.5"), ep("10.244.2.7", node="node-2"), ep("10.244.1.9", ready=False,
                                                                              serving=False)])
    unit = render_unit(p, NODE)
    assert unit.elements[SERVICE_IPS] == {"10.96.0.10 . tcp . 80": f"goto {service_chain(p)}"}
    rules = unit.chains[service_chain(p)]
    assert rules[0] == "ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    assert rules[1] == ("meta l4proto tcp dnat to numgen random mod 2 map "
                        "{ 0 : 10.244.1.5 . 8080, 1 : 10.244.2.7 . 8080 }")
    assert unit.elements[NO_ENDPOINT_SERVICES] == {}
    assert unit.endpoint_ips == {"10.244.1.5", "10.244.2.7"}


def test_no_ready_endpoint_rejects_at_once_on_every_address():
    p = port(node_port=30080, external_ips=("10.213.0.50",), endpoints=[ep("10.244.1.5", ready=False,
                                                                             serving=False)])
    unit = render_unit(p, NODE)
    assert unit.chains == {}
    assert unit.elements[SERVICE_IPS] == {} and unit.elements[SERVICE_NODEPORTS] == {}
    assert unit.elements[NO_ENDPOINT_SERVICES] == {"10.96.0.10 . tcp . 80": "goto reject-chain",
                                                   "10.213.0.50 . tcp . 80": "goto reject-chain"}
    assert unit.elements[NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "goto reject-chain"}


def test_terminating_serving_endpoints_are_used_only_when_none_is_ready():
    ready, leaving = ep("10.244.1.5"), ep("10.244.1.6", ready=False, terminating=True)
    assert pick_endpoints(port(endpoints=[ready, leaving]), node_name="node-1")[0] == [ready]
    assert pick_endpoints(port(endpoints=[leaving]), node_name="node-1")[0] == [leaving]
    gone = ep("10.244.1.7", ready=False, serving=False, terminating=True)
    assert pick_endpoints(port(endpoints=[gone]), node_name="node-1")[0] == []


def test_internal_traffic_policy_local_uses_this_nodes_endpoints_or_drops():
    local, remote = ep("10.244.1.5"), ep("10.244.2.7", node="node-2")
    unit = render_unit(port(internal_local=True, endpoints=[local, remote]), NODE)
    assert "10.244.2.7" not in " ".join(unit.chains[service_chain(port())])
    unit = render_unit(port(internal_local=True, endpoints=[remote]), NODE)
    # Endpoints exist elsewhere: drop (the client retries), not reject (the Service is not empty).
    assert unit.elements[NO_ENDPOINT_SERVICES] == {"10.96.0.10 . tcp . 80": "drop"}


def test_node_port_masquerades_and_goes_through_the_cluster_path():
    p = port(node_port=30080, endpoints=[ep("10.244.2.7", node="node-2")])
    unit = render_unit(p, NODE)
    assert unit.elements[SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {external_chain(p)}"}
    assert unit.chains[external_chain(p)] == ("jump mark-for-masquerade", f"goto {service_chain(p)}")


def test_external_traffic_policy_local_keeps_the_client_address_and_this_nodes_endpoints():
    p = port(node_port=30080, external_local=True, external_ips=("10.213.0.50",),
             endpoints=[ep("10.244.1.5"), ep("10.244.2.7", node="node-2")])
    unit = render_unit(p, NODE)
    rules = unit.chains[external_chain(p)]
    assert rules[0] == f"ip saddr 10.244.0.0/16 goto {service_chain(p)}"
    assert rules[-1] == "meta l4proto tcp dnat to 10.244.1.5:8080"
    assert "jump mark-for-masquerade" not in rules   # only for the node's own traffic (fib saddr type local)
    assert unit.elements[SERVICE_IPS]["10.213.0.50 . tcp . 80"] == f"goto {external_chain(p)}"
    remote_only = render_unit(port(node_port=30080, external_local=True,
                                   endpoints=[ep("10.244.2.7", node="node-2")]), NODE)
    assert remote_only.chains[external_chain(p)][-1] == "drop"


def test_session_affinity_remembers_the_client_per_endpoint():
    p = port(affinity_seconds=600, endpoints=[ep("10.244.1.5"), ep("10.244.1.6")])
    unit = render_unit(p, NODE)
    assert sorted(unit.sets.values()) == [600, 600]
    rules = unit.chains[service_chain(p)]
    assert sum(r.startswith("ip saddr @affinity-") for r in rules) == 2
    assert rules[-1].startswith("numgen random mod 2 vmap {")
    endpoint_chains = [name for name in unit.chains if name.startswith("endpoint-")]
    assert len(endpoint_chains) == 2
    for name in endpoint_chains:
        assert unit.chains[name][0].startswith("update @affinity-")


def test_full_render_replaces_the_table_in_one_script():
    units = render_units([port(endpoints=[ep("10.244.1.5")]), port("empty")], NODE)
    script = render_full(table="skiff-svc", node=NODE, units=units)
    assert script.startswith("add table ip skiff-svc\ndelete table ip skiff-svc\ntable ip skiff-svc {")
    assert "elements = { 10.213.0.2 }" in script
    assert "10.244.1.5 . 10.244.1.5" in script   # the hairpin pair


def test_diff_touches_only_the_changed_service():
    ports = [port(f"svc{i}", cluster_ips=(f"10.96.0.{i + 1}",), endpoints=[ep(f"10.244.1.{i + 1}")])
             for i in range(50)]
    old = render_units(ports, NODE)
    assert render_diff(table="skiff-svc", old=old, new=render_units(ports, NODE)) == ""
    changed = list(ports)
    changed[7] = port("svc7", cluster_ips=("10.96.0.8",), endpoints=[ep("10.244.1.8"), ep("10.244.1.200")])
    script = render_diff(table="skiff-svc", old=old, new=render_units(changed, NODE))
    assert "svc7" in script
    assert not any(f"svc{i}/" in script for i in range(50) if i != 7)
    assert "add element ip skiff-svc hairpin { 10.244.1.200 . 10.244.1.200 }" in script


def test_diff_removes_a_deleted_services_chains_and_elements():
    kept, gone = port("kept", endpoints=[ep("10.244.1.5")]), port("gone", cluster_ips=("10.96.0.11",),
                                                                   node_port=30001, endpoints=[ep("10.244.1.6")])
    old = render_units([kept, gone], NODE)
    script = render_diff(table="skiff-svc", old=old, new=render_units([kept], NODE))
    lines = script.splitlines()
    assert f"delete element ip skiff-svc {SERVICE_IPS} {{ 10.96.0.11 . tcp . 80 }}" in lines
    assert f"delete element ip skiff-svc {SERVICE_NODEPORTS} {{ tcp . 30001 }}" in lines
    assert f"delete chain ip skiff-svc {service_chain(gone)}" in lines
    assert f"delete chain ip skiff-svc {external_chain(gone)}" in lines
    # Elements pointing at the chains go before the chains.
    assert lines.index(f"delete element ip skiff-svc {SERVICE_IPS} {{ 10.96.0.11 . tcp . 80 }}") < \
        lines.index(f"delete chain ip skiff-svc {service_chain(gone)}")
    assert "delete element ip skiff-svc hairpin { 10.244.1.6 . 10.244.1.6 }" in lines
    assert "kept" not in script


def test_masqueraded_traffic_to_pods_comes_from_the_nodes_pod_network_address():
    node = NodeView(name="node-1", node_ips=("10.213.0.2",), cluster_cidr="10.244.0.0/16", pod_gateway="10.244.1.1")
    script = render_full(table="skiff-svc", node=node, units={})
    # Another node's fence lets pod-network sources through, not node IPs.
    assert ("meta mark set meta mark xor 0x2000; ip daddr 10.244.0.0/16 snat ip to 10.244.1.1 fully-random; "
            "masquerade fully-random;") in script


def test_an_endpoint_is_stale_for_udp_once_no_udp_service_port_uses_it():
    from agent.network.serviceproxy.proxy import ServiceProxy
    scripts = []
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lambda args, script=None: scripts.append(script) or "")
    dns = port("dns", protocol="udp", port=53, endpoints=[ep("10.244.1.5", port=53)])
    other = port("other", protocol="udp", port=54, cluster_ips=("10.96.0.11",), endpoints=[ep("10.244.1.5", port=54)])
    assert proxy.sync({"a": dns, "b": other}).full
    assert proxy.sync({"a": dns}).stale_udp_endpoints == frozenset()   # "a" still sends there
    result = proxy.sync({})
    assert result.stale_udp_endpoints == {"10.244.1.5"} and result.changed_ports == 1
    assert "delete element ip skiff-svc hairpin { 10.244.1.5 . 10.244.1.5 }" in scripts[-1]
    assert proxy.sync({}).changed_ports == 0 and len(scripts) == 3   # nothing to write
