"""Crashes, concurrency and containment of pod networking, on the real kernel."""
from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import sys
import threading

import pytest

from agent.network import NetworkError, PodNetworkManager, veth_name
from tests.agent.network.netlab import ROOT, UDP_SEND, UDP_SINK, unused_pod_cidr

pytestmark = pytest.mark.root

CRASH_DURING_ATTACH = r"""
import os, sys
from pathlib import Path
from agent.network import PodNetworkManager, links
pod_cidr, state_dir, bridge, table, node_ip, pod_id, netns = sys.argv[1:]
# kill -9 right after the veth exists, before the pod is configured.
links.configure_pod_interfaces = lambda **_: os._exit(137)
PodNetworkManager(pod_cidr=pod_cidr, state_dir=Path(state_dir), bridge=bridge, nft_table=table,
                  node_ip=node_ip).attach(pod_id=pod_id, netns_path=Path(netns), ports=())
"""


def _same(net: PodNetworkManager) -> PodNetworkManager:
    return PodNetworkManager(pod_cidr=net.pod_cidr, state_dir=net.state_dir, bridge=net.bridge,
                             nft_table=net.nft_table, node_ip=net.node_ip)


def _links() -> set[str]:
    import socket
    return {name for _, name in socket.if_nameindex()}


def test_an_agent_killed_mid_attach_leaks_no_address(net, make_pod_netns):
    crashed = "crashed-" + secrets.token_hex(3)
    ns = make_pod_netns()
    done = subprocess.run([sys.executable, "-c", CRASH_DURING_ATTACH, net.pod_cidr, str(net.state_dir), net.bridge,
                           net.nft_table, net.node_ip, crashed, str(ns.path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 137, done.stderr
    assert veth_name(crashed) in _links()  # the crash left a half-made pod network

    reborn = _same(net)
    held = reborn.allocations()
    assert crashed in held  # its address stays taken until cleanup
    other = reborn.attach(pod_id="next-" + secrets.token_hex(3), netns_path=make_pod_netns().path)
    assert other.ip != held[crashed]
    assert reborn.cleanup_orphans({p for p in reborn.allocations() if p != crashed}) == [crashed]
    assert crashed not in reborn.allocations()
    assert veth_name(crashed) not in _links()


def test_concurrent_attaches_from_threads_and_managers(net, make_pod_netns):
    pods = {f"t{n}-{secrets.token_hex(2)}": make_pod_netns() for n in range(6)}
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    node_ns = os.readlink("/proc/thread-self/ns/net")
    namespaces_after: set[str] = set()

    def attach(manager: PodNetworkManager, pod_id: str) -> None:
        try:
            results[pod_id] = manager.attach(pod_id=pod_id, netns_path=pods[pod_id].path).ip
            namespaces_after.add(os.readlink("/proc/thread-self/ns/net"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    # Two manager objects on one state dir, as an old and a new agent would be.
    managers = [net, _same(net)]
    threads = [threading.Thread(target=attach, args=(managers[i % 2], pod_id)) for i, pod_id in enumerate(pods)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(results.values())) == len(pods)
    for pod_id, ns in pods.items():
        inet = [a["local"] for link in ns.addresses() for a in link.get("addr_info", [])
                if link["ifname"] == "eth0" and a["family"] == "inet"]
        assert inet == [results[pod_id]]
    # The setns dance left every thread in the node's namespace.
    assert namespaces_after == {node_ns}


@pytest.fixture
def outside_network(make_pod_netns):
    """Another network the node can reach (a namespace on a veth of its own, with a route
    back to the pods), standing in for the world beyond the node."""
    ns = make_pod_netns()
    link = f"skiff-o{secrets.token_hex(3)}"
    cidr = ipaddress.IPv4Network(unused_pod_cidr().replace(".0/24", ".0/30").replace("10.250.", "10.251."))
    host_ip, far_ip = str(cidr.network_address + 1), str(cidr.network_address + 2)
    try:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns.name],
                       check=True)
        subprocess.run(["ip", "addr", "add", f"{host_ip}/30", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{far_ip}/30", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ns.name, "link", "set", "eth0", "up"], check=True)
        subprocess.run(["ip", "-n", ns.name, "route", "add", "default", "via", host_ip], check=True)
        yield far_ip, ns
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True)


def test_pods_are_never_routed_off_the_node(net, make_pod_netns, spawn_in_netns, outside_network):
    far_ip, far_ns = outside_network
    pod = make_pod_netns()
    net.attach(pod_id="fenced-" + secrets.token_hex(3), netns_path=pod.path)
    sink = spawn_in_netns(far_ns, sys.executable, "-c", UDP_SINK)
    assert sink.stdout.readline().strip() == "ready"
    # The node itself reaches the outside network (the control) ...
    subprocess.run([sys.executable, "-c", UDP_SEND, far_ip, "from-node"], check=True)
    # ... a pod, routed by the node, must not: it would leave the bridge.
    pod.run(sys.executable, "-c", UDP_SEND, far_ip, "from-pod")
    subprocess.run([sys.executable, "-c", UDP_SEND, far_ip, "end"], check=True)
    received = set(sink.stdout.read().split())
    assert "from-node" in received
    assert "from-pod" not in received


def test_a_failure_after_the_veth_exists_undoes_everything(net, make_pod_netns, monkeypatch):
    from agent.network import PortMapping, nftables

    def broken_nft(**_):
        raise NetworkError("nft -f - failed: injected")

    ns = make_pod_netns()
    pod_id = "undone-" + secrets.token_hex(3)
    rules_before = nftables.list_rules(table=net.nft_table)
    monkeypatch.setattr(nftables, "apply_rules", broken_nft)
    with pytest.raises(NetworkError, match="injected"):
        net.attach(pod_id=pod_id, netns_path=ns.path, ports=[PortMapping(host_port=30999, container_port=80)])
    monkeypatch.undo()
    assert net.allocations() == {}
    assert veth_name(pod_id) not in _links()
    assert [link["ifname"] for link in ns.addresses()] == ["lo"]
    assert nftables.list_rules(table=net.nft_table) == rules_before


def test_an_exhausted_pod_cidr_is_a_clear_error(net_factory, make_pod_netns):
    tiny = unused_pod_cidr().replace(".0/24", ".0/30")  # gateway .1 and one pod, .2
    net = net_factory(pod_cidr=tiny, node_ip=str(ipaddress.IPv4Network(tiny).network_address + 1))
    first = net.attach(pod_id="only-" + secrets.token_hex(3), netns_path=make_pod_netns().path)
    assert first.ip == str(ipaddress.IPv4Network(tiny).network_address + 2)
    late = "late-" + secrets.token_hex(3)
    with pytest.raises(NetworkError, match=f"{tiny} is exhausted"):
        net.attach(pod_id=late, netns_path=make_pod_netns().path)
    assert late not in net.allocations() and veth_name(late) not in _links()


def test_a_recorded_pod_in_a_new_namespace_is_rewired_with_its_address(net, make_pod_netns):
    pod_id = "moved-" + secrets.token_hex(3)
    old_ns, new_ns = make_pod_netns(), make_pod_netns()
    first = net.attach(pod_id=pod_id, netns_path=old_ns.path)
    # The runtime made a new sandbox for the pod; the old namespace still exists.
    again = net.attach(pod_id=pod_id, netns_path=new_ns.path)
    assert again.ip == first.ip
    assert [link["ifname"] for link in old_ns.addresses()] == ["lo"]
    assert [a["local"] for link in new_ns.addresses() if link["ifname"] == "eth0"
            for a in link["addr_info"] if a["family"] == "inet"] == [first.ip]
    ping = new_ns.run("busybox", "ping", "-c", "1", "-W", "3", net.gateway, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
