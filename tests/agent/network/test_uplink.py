"""hostPorts reached from another node through an uplink, and nothing else crossing it."""
from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from agent.network import PortMapping
from tests.agent.network.netlab import TCP_CLIENT, UDP_SEND, UDP_SINK, start_tcp_server, unused_pod_cidr

pytestmark = pytest.mark.root


@pytest.fixture
def other_node(make_pod_netns):
    """A namespace standing in for another node, on a veth (`skiff-u<hex>` on our side) whose
    far end routes everything through us. Yields (our uplink, our address, its address, its netns)."""
    ns = make_pod_netns()
    link = f"skiff-u{secrets.token_hex(3)}"
    cidr = ipaddress.IPv4Network(unused_pod_cidr().replace(".0/24", ".0/30").replace("10.250.", "10.251."))
    ours, theirs = str(cidr.network_address + 1), str(cidr.network_address + 2)
    try:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns.name],
                       check=True)
        subprocess.run(["ip", "addr", "add", f"{ours}/30", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{theirs}/30", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ns.name, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", ns.name, "route", "add", "default", "via", ours], check=True)
        yield link, ours, theirs, ns
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True)


def forwarding(interface: str) -> str:
    return Path(f"/proc/sys/net/ipv4/conf/{interface}/forwarding").read_text().strip()


def test_another_node_reaches_a_host_port_and_nothing_else(net_factory, make_pod_netns, spawn_in_netns,
                                                           other_node):
    uplink, node_ip, remote_ip, remote = other_node
    assert forwarding(uplink) == "0"
    net = net_factory(node_ip=node_ip, uplinks=(uplink,))
    assert forwarding(uplink) == "1"
    pod = make_pod_netns()
    host_port = 20000 + secrets.randbelow(20000)
    address = net.attach(pod_id="web-" + secrets.token_hex(3), netns_path=pod.path,
                         ports=[PortMapping(host_port=host_port, container_port=5000)])
    token = secrets.token_hex(4)
    start_tcp_server(spawn=spawn_in_netns, netns=pod, port=5000, token=token)

    # Through the node's address on the uplink, as from another machine: no SNAT needed.
    reply = remote.run(sys.executable, "-c", TCP_CLIENT, node_ip, str(host_port)).stdout.split()
    assert reply == [token, remote_ip]

    # The pod's own address is not reachable across the uplink ...
    sink = spawn_in_netns(pod, sys.executable, "-c", UDP_SINK)
    assert sink.stdout.readline().strip() == "ready"
    remote.run(sys.executable, "-c", UDP_SEND, address.ip, "from-remote")
    subprocess.run([sys.executable, "-c", UDP_SEND, address.ip, "end"], check=True)
    assert set(sink.stdout.read().split()) == {"end"}
    # ... and the pod cannot send out through it.
    remote_sink = spawn_in_netns(remote, sys.executable, "-c", UDP_SINK)
    assert remote_sink.stdout.readline().strip() == "ready"
    pod.run(sys.executable, "-c", UDP_SEND, remote_ip, "from-pod")
    subprocess.run([sys.executable, "-c", UDP_SEND, remote_ip, "end"], check=True)
    assert set(remote_sink.stdout.read().split()) == {"end"}

    net.teardown_node()
    assert forwarding(uplink) == "0"  # put back as it was


def test_egress_nat_leaves_by_the_uplink_with_the_nodes_address_and_teardown_puts_forwarding_back(
        net_factory, make_pod_netns, spawn_in_netns, other_node):
    # The "outside" is the other namespace's address: reached only over the test's veth.
    uplink, node_ip, remote_ip, remote = other_node
    assert forwarding(uplink) == "0"
    net = net_factory(node_ip=node_ip, egress="nat", egress_uplink=uplink, service_cidr="10.96.0.0/16")
    assert forwarding(uplink) == "1"
    pod = make_pod_netns()
    address = net.attach(pod_id="out-" + secrets.token_hex(3), netns_path=pod.path)
    token = secrets.token_hex(4)
    port = 20000 + secrets.randbelow(20000)
    start_tcp_server(spawn=spawn_in_netns, netns=remote, port=port, token=token)
    reply = pod.run(sys.executable, "-c", TCP_CLIENT, remote_ip, str(port)).stdout.split()
    assert reply == [token, node_ip]     # masqueraded: the server sees the node, not the pod
    assert address.ip != node_ip

    net.teardown_node()
    assert forwarding(uplink) == "0"     # put back as it was
