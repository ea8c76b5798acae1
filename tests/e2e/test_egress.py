"""Pod egress (issue 16, decision 30): on `skiff up --nodes 2`, a pod on each node
reaches a host outside the cluster masqueraded to its node's address with
`--pod-egress nat`, and cannot with `none`; pod-to-pod traffic keeps the pods'
own addresses; `down --purge` leaves no rule and no sysctl changed.

No packet leaves the machine. The "outside" host is a network namespace this
test creates, plugged into the lab's link (a bridge inside the cluster's lab
namespace) by a veth the test makes; its server address (from TEST-NET-3)
exists only there, and the only routes to it are the ones the test adds inside
the node namespaces `skiff up` created. The root namespace gains no route to it.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

OUTSIDE_IP = "203.0.113.10"      # TEST-NET-3: held only by the test's namespace
OUTSIDE_PORT = 20780

# The outside host's HTTP server: answers with the peer address it saw, and logs it.
SERVER_PY = """\
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode() + b"\\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
        with open(sys.argv[3], "a") as log: log.write(self.client_address[0] + "\\n")
    def log_message(self, *args): pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""

PODS = """\
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: {node2}
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\\\necho Content-Type: text/plain\\\\necho\\\\necho $REMOTE_ADDR\\\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {{name: client-1, labels: {{role: client}}}}
spec:
  nodeName: {node1}
  containers: [{{name: sh, image: busybox, command: ["sleep", "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client-2}}
spec:
  nodeName: {node2}
  containers: [{{name: sh, image: busybox, command: ["sleep", "3600"]}}]
"""


def run(*args: str, check: bool = True) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {done.stderr}")
    return done.stdout


def forwarding_sysctls() -> dict[str, str]:
    """The root namespace's forwarding switches: host-wide and per interface."""
    out = {"ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()}
    for path in Path("/proc/sys/net/ipv4/conf").glob("*/forwarding"):
        out[path.parent.name] = path.read_text().strip()
    return out


class Outside:
    """The lab's upstream: a namespace on the nodes' link, holding OUTSIDE_IP and a server."""

    def __init__(self, *, tag: str, lab_netns: str, lab_bridge: str, node_cidr: str, base: Path) -> None:
        self.netns = f"np-outside-{tag}"
        self.veth, self.peer = f"npo{tag}", f"npl{tag}"
        self.lab_netns, self.lab_bridge = lab_netns, lab_bridge
        self.link_ip = str(ipaddress.ip_network(node_cidr)[250])
        self.prefix = ipaddress.ip_network(node_cidr).prefixlen
        self.log = base / "outside.log"
        self.script = base / "outside_server.py"
        self.server: subprocess.Popen | None = None

    def create(self) -> None:
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        run("ip", "-n", self.netns, "addr", "add", f"{OUTSIDE_IP}/32", "dev", "lo")
        # Made inside the outside namespace, its peer moved straight into the lab's: never in the root one.
        run("ip", "-n", self.netns, "link", "add", "eth0", "type", "veth", "peer", "name", self.peer,
            "netns", self.lab_netns)
        run("ip", "-n", self.netns, "addr", "add", f"{self.link_ip}/{self.prefix}", "dev", "eth0")
        run("ip", "-n", self.netns, "link", "set", "eth0", "up")
        run("ip", "-n", self.lab_netns, "link", "set", self.peer, "master", self.lab_bridge, "up")
        self.script.write_text(SERVER_PY)
        self.log.write_text("")
        self.server = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, str(self.script),
                                        OUTSIDE_IP, str(OUTSIDE_PORT), str(self.log)])

    def route_from(self, node_netns: str) -> None:
        """The node's upstream for the outside address: this namespace (the route lives in the node's namespace)."""
        run("ip", "-n", node_netns, "route", "replace", f"{OUTSIDE_IP}/32", "via", self.link_ip)

    def remove(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()
        run("ip", "-n", self.lab_netns, "link", "del", self.peer, check=False)
        run("ip", "netns", "del", self.netns, check=False)

    def peers(self) -> list[str]:
        return self.log.read_text().split()


def _cluster(c, egress: str) -> tuple[str, str, list[str]]:
    name = f"skiffnp{c.tag[:2]}"
    node_cidr = f"10.214.{int(c.tag[:2], 16)}.0/24"
    up = subprocess.run(c.up_args("--detach", "--nodes", "2", "--name", name, "--node-cidr", node_cidr,
                                  "--pod-egress", egress),
                        env=c.env(), capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    return name, node_cidr, [f"{name}-node-1", f"{name}-node-2"]


def _pods_running(c, names: set[str]):
    pods = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"]
    ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods
           if p["status"].get("phase") == "Running" and p["status"].get("podIP")}
    return ips if names <= set(ips) else None


def _get(c, pod: str, ip: str, port: int, path: str) -> str | None:
    """GET from inside the pod (busybox nc); the body's last line, or None when it failed."""
    out = c.skiff("exec", pod, "--", "sh", "-c",
                  f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}", timeout=60)
    if out.returncode != 0 or " 200 " not in out.stdout:
        return None
    return out.stdout.strip().splitlines()[-1].strip("[]").removeprefix("::ffff:")


def fetch_outside(c, pod: str) -> str | None:
    return _get(c, pod, OUTSIDE_IP, OUTSIDE_PORT, "/")


def fetch_pod(c, pod: str, ip: str) -> str | None:
    return _get(c, pod, ip, 8080, "/cgi-bin/ip")


@pytest.mark.parametrize("egress", ["nat", "none"])
def test_pods_reach_the_outside_host_by_their_nodes_address_only_with_nat(private_cluster, egress):
    c = private_cluster
    before = forwarding_sysctls()
    routes_before = run("ip", "route", "show", "table", "all")
    name, node_cidr, nodes = _cluster(c, egress)
    outside = Outside(tag=c.tag, lab_netns=f"{name}-lab", lab_bridge=f"{name}-lab", node_cidr=node_cidr, base=c.base)
    try:
        outside.create()
        for node in nodes:
            outside.route_from(node)

        # The choice is shown where a user looks: skiff status and the nodes.
        status = c.skiff("status", "--data-dir", str(c.data_dir))
        assert f"pod egress: {egress}" in status.stdout, status.stdout
        described = c.skiff("describe", "node", nodes[0])
        assert f"skiff.io/pod-egress={egress}" in described.stdout, described.stdout

        manifest = c.base / "pods.yaml"
        manifest.write_text(PODS.format(node1=nodes[0], node2=nodes[1]))
        applied = c.skiff("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        ips = wait_for("the pods Running with an IP", lambda: _pods_running(c, {"web", "client-1", "client-2"}))
        node_ips = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"]
                                                if a["type"] == "InternalIP")
                    for n in json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]}

        # Pod to pod across nodes: the server sees the client's pod IP, NAT or not.
        seen = wait_for("client-1 answered by web across nodes", lambda: fetch_pod(c, "client-1", ips["web"]))
        assert seen == ips["client-1"]

        if egress == "nat":
            for pod, node in (("client-1", nodes[0]), ("client-2", nodes[1])):
                answer = wait_for(f"{pod} reaches the outside host", lambda pod=pod: fetch_outside(c, pod))
                assert answer == node_ips[node], (pod, answer)
            assert sorted(outside.peers()) == sorted(node_ips.values())
        else:
            for pod in ("client-1", "client-2"):
                assert fetch_outside(c, pod) is None
            assert outside.peers() == []
    finally:
        outside.remove()

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    # Other tests may add and remove their own links meanwhile: compare the switches both listings have.
    after = forwarding_sysctls()
    assert {k: after[k] for k in before if k in after} == {k: before[k] for k in before if k in after}
    assert {"ip_forward", "all", "default"} <= after.keys()
    routes_after = run("ip", "route", "show", "table", "all")
    assert "203.0.113." not in routes_before + routes_after
    assert name not in routes_after
    assert [t for t in run("nft", "list", "tables").splitlines() if name in t] == []
    assert [n for n in run("ip", "netns", "list").splitlines() if n.startswith((name, outside.netns))] == []
