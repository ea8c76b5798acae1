"""Where the cluster DNS forwards other names: --dns-upstream, else the node's resolvers
when pods have egress (nat), else nowhere (decision 30)."""
from __future__ import annotations

import dataclasses

from agent.app import dns_upstreams
from agent.config import AgentConfig

BASE = AgentConfig(node_name="n1")


def test_the_nodes_ipv4_resolvers_with_egress_nat(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# a comment\nnameserver 192.0.2.53\nnameserver ::1\nsearch example.org\n"
                      "nameserver 198.51.100.53\n")
    cfg = dataclasses.replace(BASE, pod_egress="nat")
    assert dns_upstreams(cfg, resolv_conf=str(resolv)) == ("192.0.2.53", "198.51.100.53")


def test_none_without_egress_and_the_flag_wins(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    assert dns_upstreams(dataclasses.replace(BASE, pod_egress="none"), resolv_conf=str(resolv)) == ()
    given = dataclasses.replace(BASE, pod_egress="nat", dns_upstreams=("203.0.113.1:5353",))
    assert dns_upstreams(given, resolv_conf=str(resolv)) == ("203.0.113.1:5353",)
    assert dns_upstreams(dataclasses.replace(BASE, pod_egress="nat"), resolv_conf=str(tmp_path / "absent")) == ()
