"""`skiff up --nodes 3`: three nodes, each in a network namespace of its own on a
private link, pods reaching pods across nodes by IP with no NAT (host-gw and
vxlan), a node removed taking its routes with it, and `down --purge` leaving nothing.

Root and the real kernel. No packet leaves the machine: the nodes' link is a
bridge inside a namespace the test's cluster creates, and the host reaches it
only by the link `skiff up` makes (its /24 is the host's only route there).
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

SERVER = """\
apiVersion: v1
kind: Pod
metadata: {{name: server}}
spec:
  nodeName: {node}
  containers:
  - name: httpd
    image: busybox
    # A CGI that answers with the address the server saw the client come from.
    command: ["sh", "-c", "mkdir -p /www/cgi-bin && head -c 300000 /dev/zero > /www/big && printf '#!/bin/sh\\\\necho Content-Type: text/plain\\\\necho\\\\necho $REMOTE_ADDR\\\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {client_node}
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _overlaps(destination: str, cidrs: list[str]) -> bool:
    try:
        network = ipaddress.ip_network(destination, strict=False)
    except ValueError:   # "default"
        return False
    return any(network.overlaps(ipaddress.ip_network(c)) for c in cidrs)


def leftovers(name: str, cidrs: list[str]) -> dict[str, list[str]]:
    """Whatever of the cluster's kernel objects exists, by listing each kind."""
    netns = [line.split()[0] for line in ip("netns", "list").splitlines() if line.startswith(name + "-")]
    links = [line.split()[1] for line in ip("-o", "link", "show").splitlines() if name in line]
    routes = [line for line in ip("route", "show").splitlines() if name in line or _overlaps(line.split()[0], cidrs)]
    tables = [line for line in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                              check=True).stdout.splitlines() if name in line]
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{name}-*")]
    return {k: v for k, v in dict(netns=netns, links=links, routes=routes, tables=tables, cgroups=cgroups).items()
            if v}


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_three_nodes_pods_across_nodes_node_remove_and_purge(private_cluster, backend):
    c = private_cluster
    name = f"skiff{c.tag[:4]}"
    node_cidr = f"10.213.{int(c.tag[:2], 16)}.0/24"
    cluster_cidr = f"10.{100 + int(c.tag, 16) % 100}.0.0/16"
    up = subprocess.run(c.up_args("--detach", "--nodes", "3", "--name", name, "--node-cidr", node_cidr,
                                  "--pod-network", backend),
                        env=c.env(), capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    nodes = [f"{name}-node-{i}" for i in (1, 2, 3)]
    for node in nodes:
        assert f"starting agent (node {node}) ... ok" in up.stdout

    # Three nodes Ready, each with its own node IP (on the private link) and pod CIDR.
    listed = json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in listed) == nodes
    node_ips = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
                for n in listed}
    pod_cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in listed}
    assert len(set(node_ips.values())) == 3 and len(set(pod_cidrs.values())) == 3
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(node_cidr) for a in node_ips.values())
    assert all(ipaddress.ip_network(p).subnet_of(ipaddress.ip_network(cluster_cidr)) for p in pod_cidrs.values())
    for n in listed:
        assert any(cond["type"] == "Ready" and cond["status"] == "True" for cond in n["status"]["conditions"])
    # Each node is a namespace holding its node IP.
    for node in nodes:
        assert f"inet {node_ips[node]}/24" in ip("-n", node, "-o", "-4", "addr", "show")

    # A pod on node 1 reaches a pod on node 3 by pod IP, and the server sees the client's pod IP (no NAT).
    manifest = c.base / "pods.yaml"
    manifest.write_text(SERVER.format(node=nodes[2], client_node=nodes[0]))
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    def pod_ips():
        pods = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods if p["status"].get("phase") == "Running"}
        return ips if ips.get("server") and ips.get("client") else None

    ips = wait_for("both pods Running with an IP", pod_ips)
    assert ipaddress.ip_address(ips["server"]) in ipaddress.ip_network(pod_cidrs[nodes[2]])
    assert ipaddress.ip_address(ips["client"]) in ipaddress.ip_network(pod_cidrs[nodes[0]])

    def ask():
        out = c.skiff("exec", "client", "--", "sh", "-c",
                      f"printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ips['server']} 8080", timeout=60)
        return out.stdout if out.returncode == 0 and "200 OK" in out.stdout else None

    answer = wait_for("the client's request answered across nodes", ask, timeout=60)
    seen = answer.strip().splitlines()[-1].strip("[]").removeprefix("::ffff:")
    assert seen == ips["client"]
    # More than a packet's worth arrives whole (with vxlan: the pods' MTU leaves room for the tunnel).
    big = c.skiff("exec", "client", "--", "sh", "-c",
                  f"printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ips['server']} 8080 | tail -c 300000 | wc -c")
    assert big.stdout.split() == ["300000"], big.stdout + big.stderr
    mtu = c.skiff("exec", "client", "--", "ip", "link", "show", "eth0").stdout
    assert ("mtu 1450 " if backend == "vxlan" else "mtu 1500 ") in mtu

    # Each node routes the other nodes' pod CIDRs: through their node IPs (host-gw),
    # or through its tunnel device to their VTEPs, whose frames go to their node IPs (vxlan).
    for i, node in enumerate(nodes, start=1):
        routes = ip("-n", node, "route", "show")
        for other in nodes:
            if other == node:
                continue
            if backend == "host-gw":
                assert f"{pod_cidrs[other]} via {node_ips[other]} " in routes, (node, routes)
            else:
                vtep = pod_cidrs[other].split("/")[0]
                assert f"{pod_cidrs[other]} via {vtep} dev {name}-vx{i} " in routes, (node, routes)
                fdb = subprocess.run(["bridge", "-n", node, "fdb", "show", "dev", f"{name}-vx{i}"],
                                     capture_output=True, text=True, check=True).stdout
                assert f"dst {node_ips[other]} self permanent" in fdb, (node, fdb)

    # node remove: the Node is gone, and so are its routes on the other nodes and its namespace.
    removed = c.skiff("node", "remove", nodes[2], "--data-dir", str(c.data_dir), "--grace-period", "1", timeout=180)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    names = json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in names) == nodes[:2]
    for node in nodes[:2]:
        wait_for(f"{node} drops the route to {pod_cidrs[nodes[2]]}",
                 lambda node=node: pod_cidrs[nodes[2]] not in ip("-n", node, "route", "show"), timeout=30)
    assert nodes[2] not in ip("netns", "list")
    assert "server" not in c.skiff("get", "pods").stdout

    # down --purge: no namespace, link, route, nftables table or cgroup with the cluster's names.
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr, cluster_cidr]) == {}
