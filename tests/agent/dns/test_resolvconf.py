"""A pod's /etc/resolv.conf per dnsPolicy, line for line as kubelet writes it."""
from __future__ import annotations

from agent.dns import ClusterDns, HostResolv, resolv_conf
from proto.skiff.v1 import types_pb2

HOST = HostResolv.parse("# host\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\n"
                        "options edns0 trust-ad\n")
NODE = ClusterDns(address="10.244.1.1")


def pod(policy: str = "", *, host_network: bool = False, config: dict | None = None,
        namespace: str = "shop") -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace = "p", namespace
    p.spec.dns_policy = policy
    p.spec.host_network = host_network
    if config:
        p.spec.dns_config.nameservers.extend(config.get("nameservers", []))
        p.spec.dns_config.searches.extend(config.get("searches", []))
        for name, value in config.get("options", []):
            option = p.spec.dns_config.options.add(name=name)
            if value is not None:
                option.value = value
    return p


def test_cluster_first_is_the_default_policy():
    expected = ("nameserver 10.244.1.1\n"
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                "options ndots:5\n")
    assert resolv_conf(pod(), cluster=NODE, host=HOST) == expected
    assert resolv_conf(pod("ClusterFirst"), cluster=NODE, host=HOST) == expected


def test_the_cluster_domain_is_the_nodes():
    text = resolv_conf(pod(), cluster=ClusterDns("10.244.1.1", "corp.internal"), host=HostResolv())
    assert "search shop.svc.corp.internal svc.corp.internal corp.internal\n" in text


def test_default_is_the_nodes_resolv_conf_without_loopback_nameservers():
    assert resolv_conf(pod("Default"), cluster=NODE, host=HOST) == (
        "nameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n")


def test_host_network_with_cluster_first_is_default_and_keeps_loopback():
    assert resolv_conf(pod("ClusterFirst", host_network=True), cluster=NODE, host=HOST) == (
        "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0 trust-ad\n")


def test_cluster_first_with_host_net():
    text = resolv_conf(pod("ClusterFirstWithHostNet", host_network=True), cluster=NODE, host=HOST)
    assert text.startswith("nameserver 10.244.1.1\nsearch shop.svc.cluster.local ")


def test_none_takes_only_dns_config():
    p = pod("None", config={"nameservers": ["192.0.2.1"], "searches": ["ns1.svc.cluster-domain.example",
                                                                       "my.dns.search.suffix"],
                            "options": [("ndots", "2"), ("edns0", None)]})
    # Kubernetes' documented example (pods/custom-dns.yaml)
    assert resolv_conf(p, cluster=NODE, host=HOST) == (
        "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "options ndots:2 edns0\n")


def test_dns_config_merges_into_cluster_first():
    p = pod(config={"nameservers": ["192.0.2.9"], "searches": ["extra.example", "svc.cluster.local"],
                    "options": [("ndots", "1"), ("single-request", None)]})
    assert resolv_conf(p, cluster=NODE, host=HostResolv()) == (
        "nameserver 10.244.1.1\nnameserver 192.0.2.9\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\n"
        "options ndots:1 single-request\n")


def test_no_cluster_dns_on_the_node_falls_back_to_default():
    assert resolv_conf(pod(), cluster=ClusterDns(""), host=HOST).startswith("nameserver 192.0.2.53\n")


def test_at_most_three_nameservers():
    p = pod("None", config={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]})
    assert resolv_conf(p, cluster=NODE, host=HOST).count("nameserver") == 3
