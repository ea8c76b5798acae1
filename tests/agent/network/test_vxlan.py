"""The vxlan backend's addressing (agent/network/vxlan.py): what a node derives
from another node's Node object alone. The kernel side runs in tests/e2e/test_nodes.py."""
from __future__ import annotations

from agent.network.vxlan import OVERHEAD, node_ip_of, vtep_ip, vtep_mac


def test_a_vtep_mac_is_the_node_ip_and_reads_back():
    assert vtep_mac("10.213.0.4") == "0a:58:0a:d5:00:04"
    assert node_ip_of("0a:58:0a:d5:00:04") == "10.213.0.4"
    assert node_ip_of("02:42:ac:11:00:02") == ""      # not one of ours: leads to no node


def test_the_vtep_address_is_the_pod_cidrs_network_address():
    assert vtep_ip("10.177.2.0/24") == "10.177.2.0"


def test_the_tunnel_takes_fifty_bytes():
    assert 1500 - OVERHEAD == 1450
