"""PodNetworkManager on the real kernel: namespaces, veths, a bridge, nftables."""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import subprocess
import socket
import sys

import pytest

from agent.network import HostPortInUse, NetworkError, PodNetworkManager, PortMapping, veth_name
from agent.network import links, nftables
from tests.agent.network.netlab import TCP_CLIENT, leftovers, start_tcp_server

pytestmark = pytest.mark.root


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect_and_read(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5) as s:
        return s.recv(200).decode()


def link_names() -> set[str]:
    return set(socket_if[1] for socket_if in socket.if_nameindex())


def pod_rules(net: PodNetworkManager, pod_id: str) -> list[dict]:
    return [r for r in nftables.list_rules(table=net.nft_table) if pod_id in r.get("comment", "")]


def test_pod_gets_address_route_and_eth0(net, make_pod_netns):
    ns = make_pod_netns()
    pod_id = f"pod-{secrets.token_hex(4)}"
    address = net.attach(pod_id=pod_id, netns_path=ns.path, ports=())
    network = ipaddress.IPv4Network(net.pod_cidr)
    assert ipaddress.IPv4Address(address.ip) in network
    assert address.gateway == str(network.network_address + 1) and address.ip != address.gateway
    assert address.prefix_len == network.prefixlen
    by_name = {link["ifname"]: link for link in ns.addresses()}
    assert set(by_name) == {"lo", "eth0"}
    assert "UP" in by_name["lo"]["flags"] and "UP" in by_name["eth0"]["flags"]
    assert {(a["local"], a["prefixlen"]) for a in by_name["eth0"]["addr_info"] if a["family"] == "inet"} == \
        {(address.ip, address.prefix_len)}
    default = [r for r in ns.routes() if r["dst"] == "default"]
    assert default == [{**default[0], "gateway": address.gateway, "dev": "eth0"}]
    assert veth_name(pod_id) in link_names()
    assert net.allocations() == {pod_id: address.ip}



def test_a_pod_veth_is_up_on_the_bridge_in_hairpin_mode_with_the_mtu(net_factory, make_pod_netns):
    net = net_factory(mtu=1400)
    ns = make_pod_netns()
    pod_id = f"pod-{secrets.token_hex(4)}"
    net.attach(pod_id=pod_id, netns_path=ns.path, ports=())
    host_end = json.loads(subprocess.run(["ip", "-d", "-j", "link", "show", veth_name(pod_id)], capture_output=True,
                                         text=True, check=True).stdout)[0]
    assert host_end["master"] == net.bridge and "UP" in host_end["flags"] and host_end["mtu"] == 1400
    assert host_end["linkinfo"]["info_kind"] == "veth"
    assert host_end["linkinfo"]["info_slave_data"]["hairpin"] is True
    eth0 = next(link for link in ns.addresses() if link["ifname"] == "eth0")
    assert eth0["mtu"] == 1400


def test_a_detach_deletes_the_veth_without_holding_the_state_lock(net, make_pod_netns, monkeypatch):
    # The kernel takes ~20 ms to unregister a veth; under the lock every other pod's
    # attach and detach on the node would wait for it.
    ns = make_pod_netns()
    pod_id = f"pod-{secrets.token_hex(4)}"
    net.attach(pod_id=pod_id, netns_path=ns.path, ports=())
    lock_held: list[bool] = []
    delete_link = links.delete_link

    def spy(*, name: str) -> bool:
        fd = os.open(net.state_dir / "pods.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock_held.append(False)
        except BlockingIOError:
            lock_held.append(True)
        finally:
            os.close(fd)
        return delete_link(name=name)
    monkeypatch.setattr(links, "delete_link", spy)
    net.detach(pod_id)
    assert lock_held == [False]
    assert veth_name(pod_id) not in link_names() and net.allocations() == {}

def test_two_pods_reach_each_other_by_ip(net, make_pod_netns, spawn_in_netns):
    a, b = make_pod_netns(), make_pod_netns()
    addr_a = net.attach(pod_id="pod-a-" + secrets.token_hex(3), netns_path=a.path, ports=())
    addr_b = net.attach(pod_id="pod-b-" + secrets.token_hex(3), netns_path=b.path, ports=())
    assert addr_a.ip != addr_b.ip
    ping = a.run("busybox", "ping", "-c", "1", "-W", "3", addr_b.ip, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    token = secrets.token_hex(4)
    start_tcp_server(spawn=spawn_in_netns, netns=b, port=8080, token=token)
    reply = a.run(sys.executable, "-c", TCP_CLIENT, addr_b.ip, "8080").stdout.split()
    assert reply == [token, addr_a.ip]  # direct, no NAT between pods


def test_host_port_reaches_pod_from_loopback_node_ip_and_other_pods(net, make_pod_netns, spawn_in_netns):
    server_ns, client_ns = make_pod_netns(), make_pod_netns()
    host_port = free_tcp_port()
    pod_id = "web-" + secrets.token_hex(3)
    address = net.attach(pod_id=pod_id, netns_path=server_ns.path,
                         ports=[PortMapping(host_port=host_port, container_port=5000)])
    client = net.attach(pod_id="client-" + secrets.token_hex(3), netns_path=client_ns.path, ports=())
    token = secrets.token_hex(4)
    start_tcp_server(spawn=spawn_in_netns, netns=server_ns, port=5000, token=token)

    # From the host itself (output hook), as `curl 127.0.0.1:PORT` after `docker run -p`.
    assert connect_and_read("127.0.0.1", host_port).split()[0] == token
    assert connect_and_read(net.node_ip, host_port).split()[0] == token
    # From another namespace through the node's address (prerouting hook).
    reply = client_ns.run(sys.executable, "-c", TCP_CLIENT, net.node_ip, str(host_port)).stdout.split()
    assert reply[0] == token
    assert reply[1] in (client.ip, net.gateway)
    # The pod reaching its own hostPort through the node (hairpin).
    reply = server_ns.run(sys.executable, "-c", TCP_CLIENT, net.node_ip, str(host_port)).stdout.split()
    assert reply[0] == token
    # The rule is in Skiff's table, tagged with the pod.
    assert len(pod_rules(net, pod_id)) == 1
    assert address.ip in str(pod_rules(net, pod_id)[0]["expr"])


def test_host_port_with_host_ip_publishes_only_there(net, make_pod_netns, spawn_in_netns):
    ns = make_pod_netns()
    host_port = free_tcp_port()
    net.attach(pod_id="only-lo-" + secrets.token_hex(3), netns_path=ns.path,
               ports=[PortMapping(host_port=host_port, container_port=7000, host_ip="127.0.0.1")])
    token = secrets.token_hex(4)
    start_tcp_server(spawn=spawn_in_netns, netns=ns, port=7000, token=token)
    assert connect_and_read("127.0.0.1", host_port).split()[0] == token
    with pytest.raises(ConnectionRefusedError):
        connect_and_read(net.node_ip, host_port)


def test_duplicate_host_port_is_refused_and_rolled_back(net, make_pod_netns):
    a, b = make_pod_netns(), make_pod_netns()
    host_port = free_tcp_port()
    first = "first-" + secrets.token_hex(3)
    net.attach(pod_id=first, netns_path=a.path, ports=[PortMapping(host_port=host_port, container_port=80)])
    second = "second-" + secrets.token_hex(3)
    with pytest.raises(HostPortInUse) as caught:
        net.attach(pod_id=second, netns_path=b.path, ports=[PortMapping(host_port=host_port, container_port=81)])
    assert str(host_port) in str(caught.value) and first in str(caught.value)
    assert veth_name(second) not in link_names()
    assert [link["ifname"] for link in b.addresses()] == ["lo"]
    assert second not in net.allocations()
    assert pod_rules(net, second) == [] and len(pod_rules(net, first)) == 1
    # The same port number over UDP is a different port.
    net.attach(pod_id=second, netns_path=b.path,
               ports=[PortMapping(host_port=host_port, container_port=81, protocol="UDP")])
    assert len(pod_rules(net, second)) == 1


def test_port_a_host_socket_listens_on_is_refused(net, make_pod_netns):
    ns = make_pod_netns()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        pod_id = "clash-" + secrets.token_hex(3)
        with pytest.raises(HostPortInUse, match=f"{port}"):
            net.attach(pod_id=pod_id, netns_path=ns.path, ports=[PortMapping(host_port=port, container_port=80)])
        assert pod_id not in net.allocations()
        assert veth_name(pod_id) not in link_names()
        assert pod_rules(net, pod_id) == []


def test_attach_to_missing_namespace_fails_and_undoes(net, tmp_path):
    pod_id = "ghost-" + secrets.token_hex(3)
    with pytest.raises(NetworkError, match="ghost-netns"):
        net.attach(pod_id=pod_id, netns_path=tmp_path / "ghost-netns",
                   ports=[PortMapping(host_port=free_tcp_port(), container_port=80)])
    assert net.allocations() == {}
    assert veth_name(pod_id) not in link_names()
    assert pod_rules(net, pod_id) == []


def test_addresses_are_never_given_twice_across_a_crash(net, make_pod_netns):
    before, namespaces = {}, {}
    for _ in range(3):
        pod_id = "p-" + secrets.token_hex(3)
        namespaces[pod_id] = make_pod_netns()
        before[pod_id] = net.attach(pod_id=pod_id, netns_path=namespaces[pod_id].path).ip
    # The agent dies; a new one starts on the same state directory.
    reborn = PodNetworkManager(pod_cidr=net.pod_cidr, state_dir=net.state_dir, bridge=net.bridge,
                               nft_table=net.nft_table, node_ip=net.node_ip)
    assert reborn.allocations() == before
    fresh = reborn.attach(pod_id="after-" + secrets.token_hex(3), netns_path=make_pod_netns().path).ip
    assert fresh not in before.values()
    # Re-attaching an adopted pod keeps its address and its veth.
    adopted = next(iter(before))
    index = socket.if_nametoindex(veth_name(adopted))
    assert reborn.attach(pod_id=adopted, netns_path=namespaces[adopted].path).ip == before[adopted]
    assert socket.if_nametoindex(veth_name(adopted)) == index


def test_detach_and_teardown_leave_nothing(net, make_pod_netns, tmp_path):
    ns = make_pod_netns()
    pod_id = "gone-" + secrets.token_hex(3)
    address = net.attach(pod_id=pod_id, netns_path=ns.path,
                         ports=[PortMapping(host_port=free_tcp_port(), container_port=80),
                                PortMapping(host_port=free_tcp_port(), container_port=53, protocol="UDP")])
    assert len(pod_rules(net, pod_id)) == 2
    net.detach(pod_id)
    net.detach(pod_id)  # idempotent
    assert veth_name(pod_id) not in link_names()
    assert [link["ifname"] for link in ns.addresses()] == ["lo"]
    assert pod_rules(net, pod_id) == []
    assert address.ip not in net.allocations().values()
    net.teardown_node()
    assert leftovers(bridge=net.bridge, table=net.nft_table) == []
    net.teardown_node()  # idempotent


def test_cleanup_orphans_keeps_only_the_named_pods(net, make_pod_netns):
    keep_ns, lost_ns = make_pod_netns(), make_pod_netns()
    keep, lost = "keep-" + secrets.token_hex(3), "lost-" + secrets.token_hex(3)
    kept_addr = net.attach(pod_id=keep, netns_path=keep_ns.path, ports=[PortMapping(free_tcp_port(), 80)])
    net.attach(pod_id=lost, netns_path=lost_ns.path, ports=[PortMapping(free_tcp_port(), 80)])
    reborn = PodNetworkManager(pod_cidr=net.pod_cidr, state_dir=net.state_dir, bridge=net.bridge,
                               nft_table=net.nft_table, node_ip=net.node_ip)
    assert reborn.cleanup_orphans({keep}) == [lost]
    assert reborn.allocations() == {keep: kept_addr.ip}
    assert veth_name(lost) not in link_names() and veth_name(keep) in link_names()
    assert pod_rules(net, lost) == [] and len(pod_rules(net, keep)) == 1
    ping = keep_ns.run("busybox", "ping", "-c", "1", "-W", "3", net.gateway, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_ensure_node_network_restores_rules_after_the_table_is_lost(net, make_pod_netns):
    pod_id = "survivor-" + secrets.token_hex(3)
    net.attach(pod_id=pod_id, netns_path=make_pod_netns().path, ports=[PortMapping(free_tcp_port(), 80)])
    nftables.delete_table(table=net.nft_table)  # as after a reboot
    net.ensure_node_network()
    assert len(pod_rules(net, pod_id)) == 1
    net.ensure_node_network()  # idempotent
    assert len(pod_rules(net, pod_id)) == 1


@pytest.mark.slow
def test_fifty_attach_detach_cycles_leave_nothing(net, make_pod_netns):
    ns = make_pod_netns()
    seen = set()
    for i in range(50):
        pod_id = f"cycle-{i}-{secrets.token_hex(2)}"
        address = net.attach(pod_id=pod_id, netns_path=ns.path, ports=[PortMapping(free_tcp_port(), 80)])
        seen.add(address.ip)
        net.detach(pod_id)
    assert len(seen) > 1  # round robin: a released address is not handed out again at once
    assert net.allocations() == {}
    assert [link["ifname"] for link in ns.addresses()] == ["lo"]
    assert leftovers(bridge=net.bridge, table="-none-") == [f"link {net.bridge}"]
    assert [r for r in nftables.list_rules(table=net.nft_table) if "comment" in r] == []


UDP_ECHO_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(sys.argv[2].encode(), peer)
"""


def test_a_udp_host_port_follows_the_pod_that_replaces_another(net, make_pod_netns, spawn_in_netns):
    host_port = free_tcp_port()
    old_ns, new_ns = make_pod_netns(), make_pod_netns()
    for ns, token in ((old_ns, "old"), (new_ns, "new")):
        server = spawn_in_netns(ns, sys.executable, "-c", UDP_ECHO_SERVER, "53", token)
        assert server.stdout.readline().strip() == "ready"
    mapping = [PortMapping(host_port=host_port, container_port=53, protocol="UDP")]
    old = "old-" + secrets.token_hex(3)
    net.attach(pod_id=old, netns_path=old_ns.path, ports=mapping)
    # One client socket throughout: its flow (same source port) outlives the first pod.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(b"?", ("127.0.0.1", host_port))
        assert client.recv(100) == b"old"
        net.detach(old)
        net.attach(pod_id="new-" + secrets.token_hex(3), netns_path=new_ns.path, ports=mapping)
        client.sendto(b"?", ("127.0.0.1", host_port))
        assert client.recv(100) == b"new"


def test_a_pod_without_host_ports_costs_no_nft_run(net, make_pod_netns, monkeypatch):
    """A pod is in the node's table only by its hostPorts: attaching and detaching one without
    any runs no `nft` (one per pod, under the attach lock, bounded the node's start rate)."""
    runs = []
    real = nftables.run_nft
    monkeypatch.setattr(nftables, "run_nft", lambda args, script=None: runs.append(args) or real(args, script))
    plain, published = f"plain-{secrets.token_hex(3)}", f"ports-{secrets.token_hex(3)}"
    net.attach(pod_id=plain, netns_path=make_pod_netns().path, ports=())
    assert runs == [] and plain in net.allocations()
    net.attach(pod_id=published, netns_path=make_pod_netns().path,
               ports=[PortMapping(host_port=free_tcp_port(), container_port=80)])
    assert runs == [["-f", "-"]] and len(pod_rules(net, published)) == 1
    before = len(runs)
    net.detach(plain)
    assert plain not in net.allocations() and veth_name(plain) not in link_names()
    assert len(runs) == before   # the detach ran nothing
    net.detach(published)
    assert pod_rules(net, published) == []
