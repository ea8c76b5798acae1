"""The service proxy on the real kernel, as root: a node namespace routing between a
client namespace and two backend namespaces, each on a veth of its own; Skiff's
service table in the node namespace DNATs a ClusterIP (and a NodePort) to the
backends. Connections are counted per backend."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from agent.network.serviceproxy.model import Endpoint, NodeView, ServicePort
from agent.network.serviceproxy.proxy import ServiceProxy, table_exists
from tests.agent.network.netlab import start_tcp_server

CLUSTER_IP = "10.96.0.10"
NODE_IP = "10.77.0.1"    # on the node namespace's loopback: where NodePorts are served

CLIENT = r"""
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            print(s.recv(200).decode().split()[0], flush=True)
    except ConnectionRefusedError:
        print("refused", flush=True)
    except OSError as exc:
        print(type(exc).__name__, flush=True)
"""


class Lab:
    """node: routes between client (10.77.1.2) and backends b1 (10.77.2.2), b2 (10.77.3.2)."""

    def __init__(self, make_pod_netns, spawn_in_netns):
        self.node = make_pod_netns()
        self.client, self.b1, self.b2 = make_pod_netns(), make_pod_netns(), make_pod_netns()
        self.spawn = spawn_in_netns
        self.node.run("ip", "link", "set", "lo", "up")
        self.node.run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        self.node.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        for index, ns in enumerate((self.client, self.b1, self.b2), start=1):
            self.node.run("ip", "link", "add", f"v{index}", "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            self.node.run("ip", "addr", "add", f"10.77.{index}.1/24", "dev", f"v{index}")
            self.node.run("ip", "link", "set", f"v{index}", "up")
            ns.run("ip", "link", "set", "lo", "up")
            ns.run("ip", "addr", "add", f"10.77.{index}.2/24", "dev", "eth0")
            ns.run("ip", "link", "set", "eth0", "up")
            ns.run("ip", "route", "add", "default", "via", f"10.77.{index}.1")
        start_tcp_server(spawn=spawn_in_netns, netns=self.b1, port=8080, token="b1")
        start_tcp_server(spawn=spawn_in_netns, netns=self.b2, port=8080, token="b2")

    def nft(self, args: list[str], script: str | None = None) -> str:
        done = subprocess.run(["ip", "netns", "exec", self.node.name, "nft", *args], input=script,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def connect(self, host: str, port: int, count: int) -> Counter:
        done = self.client.run(sys.executable, "-c", CLIENT, host, str(port), str(count), timeout=120)
        return Counter(done.stdout.split())


@pytest.fixture
def lab(make_pod_netns, spawn_in_netns):
    return Lab(make_pod_netns, spawn_in_netns)


def web(*, endpoints, **kw) -> ServicePort:
    return ServicePort(namespace="default", name="web", port_name="", protocol="tcp", port=80,
                       cluster_ips=(CLUSTER_IP,), endpoints=tuple(endpoints), **kw)


B1 = Endpoint(ip="10.77.2.2", port=8080, node_name="node")
B2 = Endpoint(ip="10.77.3.2", port=8080, node_name="node")
# The pod network of this lab is 10.77.0.0/16; masqueraded traffic to pods comes from NODE_IP.
NODE = NodeView(name="node", node_ips=(NODE_IP,), cluster_cidr="10.77.0.0/16", pod_gateway=NODE_IP)


def test_cluster_ip_spreads_connections_over_both_backends(lab):
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    proxy.sync({"web": web(endpoints=[B1, B2])})
    counts = lab.connect(CLUSTER_IP, 80, 60)
    assert set(counts) == {"b1", "b2"}, counts
    assert counts["b1"] + counts["b2"] == 60
    assert min(counts.values()) >= 10, counts   # 60 fair coin flips: < 10 of one side is ~1e-6


def test_an_endpoint_change_is_applied_incrementally(lab):
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    other = ServicePort(namespace="default", name="other", port_name="", protocol="tcp", port=81,
                        cluster_ips=("10.96.0.11",), endpoints=(B1,))
    assert proxy.sync({"web": web(endpoints=[B1, B2]), "other": other}).full
    result = proxy.sync({"web": web(endpoints=[B2]), "other": other})
    assert not result.full and result.changed_ports == 1
    assert lab.connect(CLUSTER_IP, 80, 10) == Counter({"b2": 10})
    assert lab.connect("10.96.0.11", 81, 3) == Counter({"b1": 3})
    proxy.sync({"web": web(endpoints=[B2])})   # "other" deleted: its chains and elements go
    assert "10.96.0.11" not in lab.nft(["list", "table", "ip", "skiff-svc"])
    assert lab.connect("10.96.0.11", 81, 1) != Counter({"b1": 1})


def test_a_service_without_ready_endpoints_refuses_at_once(lab):
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    unready = Endpoint(ip="10.77.2.2", port=8080, ready=False, serving=False, node_name="node")
    proxy.sync({"web": web(endpoints=[unready], node_port=30080)})
    assert lab.connect(CLUSTER_IP, 80, 3) == Counter({"refused": 3})
    assert lab.connect(NODE_IP, 30080, 2) == Counter({"refused": 2})


def test_node_port_answers_on_the_node_address(lab):
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    proxy.sync({"web": web(endpoints=[B1, B2], node_port=30080)})
    counts = lab.connect(NODE_IP, 30080, 30)
    assert set(counts) == {"b1", "b2"} and sum(counts.values()) == 30, counts
    # Masqueraded: the backends saw the node's pod-network address, not the client's.
    seen = lab.client.run(sys.executable, "-c", "import socket; s = socket.create_connection(('10.77.0.1', 30080));"
                          "print(s.recv(100).decode())").stdout.split()
    assert seen[1] == NODE_IP, seen


def test_session_affinity_keeps_a_client_on_one_backend(lab):
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    proxy.sync({"web": web(endpoints=[B1, B2], affinity_seconds=60)})
    counts = lab.connect(CLUSTER_IP, 80, 20)
    assert len(counts) == 1 and sum(counts.values()) == 20, counts


def test_a_restart_replaces_a_left_over_table_and_teardown_removes_it(lab):
    crashed = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    crashed.sync({"web": web(endpoints=[B1])})
    restarted = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)   # knows nothing of the old table
    assert restarted.sync({"web": web(endpoints=[B2])}).full
    assert lab.connect(CLUSTER_IP, 80, 5) == Counter({"b2": 5})
    assert "10.77.2.2" not in lab.nft(["list", "table", "ip", "skiff-svc"])
    restarted.teardown()
    restarted.teardown()   # idempotent
    assert not table_exists("skiff-svc", run=lab.nft)


def test_incremental_changes_of_every_shape_apply_in_the_kernel(lab):
    """Affinity on and off, NodePort and Local policies added and removed, endpoints
    going and coming: each diff is one transaction the kernel accepts, ending equal
    to a full write of the same Services."""
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    shapes = [
        {"web": web(endpoints=[B1, B2])},
        {"web": web(endpoints=[B1, B2], affinity_seconds=30)},
        {"web": web(endpoints=[B1], affinity_seconds=60, node_port=30080)},
        {"web": web(endpoints=[B1, B2], node_port=30080, external_local=True)},
        {"web": web(endpoints=[], node_port=30080)},
        {"web": web(endpoints=[B2], internal_local=True)},
        {},
        {"web": web(endpoints=[B1, B2], affinity_seconds=30)},
    ]
    for ports in shapes:
        proxy.sync(ports)
    incremental = _contents(lab)
    ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft).sync(shapes[-1])
    assert incremental == _contents(lab)
    counts = lab.connect(CLUSTER_IP, 80, 10)
    assert len(counts) == 1 and sum(counts.values()) == 10, counts


def _contents(lab) -> list[str]:
    """The table's chains, rules, sets and maps with their elements, in no particular order."""
    items = json.loads(lab.nft(["-j", "list", "table", "ip", "skiff-svc"]))["nftables"]
    out = []
    for item in items:
        for kind, body in item.items():
            if kind == "metainfo":
                continue
            body = {k: v for k, v in body.items() if k != "handle"}
            if "elem" in body:
                body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
            out.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(out)


def test_cluster_ips_serve_only_the_pod_interface_when_one_is_named(lab):
    """Two clusters on one host hand out the same ClusterIPs: each table answers its own bridge."""
    own = NodeView(name="node", node_ips=(NODE_IP,), pod_interface="v1", service_cidr="10.96.0.0/16")
    proxy = ServiceProxy(table="skiff-svc", node=own, run=lab.nft)
    proxy.sync({"web": web(endpoints=[B1, B2])})
    assert sum(lab.connect(CLUSTER_IP, 80, 6).values()) == 6   # the client's veth is v1
    other = ServiceProxy(table="skiff-svc", node=NodeView(name="node", node_ips=(NODE_IP,), pod_interface="v3",
                                                          service_cidr="10.96.0.0/16"), run=lab.nft)
    other.sync({"web": web(endpoints=[B1, B2])})
    counts = lab.connect(CLUSTER_IP, 80, 3)
    assert not {"b1", "b2"} & set(counts), counts   # not DNAT'd: the node has no route there


def test_the_node_itself_reaches_a_cluster_ip(lab):
    """Node-originated traffic takes the output hook. The kernel routes before NAT, so
    the node needs some route to the ClusterIP (a host's default route; here one of ours)."""
    proxy = ServiceProxy(table="skiff-svc", node=NODE, run=lab.nft)
    proxy.sync({"web": web(endpoints=[B1, B2])})
    lab.node.run("ip", "route", "add", "10.96.0.0/16", "dev", "v1")
    done = lab.node.run(sys.executable, "-c", CLIENT, CLUSTER_IP, "80", "20", timeout=120)
    counts = Counter(done.stdout.split())
    assert set(counts) == {"b1", "b2"} and sum(counts.values()) == 20, counts
