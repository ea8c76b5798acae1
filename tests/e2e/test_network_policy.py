"""NetworkPolicy (issue 11 part 7, decision 30) on `skiff up --nodes 2` with the real
kernel: a default-deny ingress policy blocks pod-to-pod across nodes, an allow rule
with a podSelector re-opens it for the labelled client only, and an egress deny
blocks the outside host (the lab's upstream namespace of tests/e2e/test_egress.py;
no packet leaves the machine).
"""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_egress import Outside, _cluster, _get, _pods_running, fetch_outside

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

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
    ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: friend, labels: {{role: client}}}}
spec:
  nodeName: {node1}
  containers: [{{name: sh, image: busybox, command: ["sleep", "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: stranger}}
spec:
  nodeName: {node1}
  containers: [{{name: sh, image: busybox, command: ["sleep", "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: neighbour}}
spec:
  nodeName: {node2}
  containers: [{{name: sh, image: busybox, command: ["sleep", "3600"]}}]
"""

DENY_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

ALLOW_CLIENTS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
"""

DENY_CLIENT_EGRESS = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: clients-stay-in}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {}}]
"""


def test_default_deny_then_allow_by_pod_selector_then_egress_deny(private_cluster):
    c = private_cluster
    name, node_cidr, nodes = _cluster(c, "nat")
    outside = Outside(tag=c.tag, lab_netns=f"{name}-lab", lab_bridge=f"{name}-lab", node_cidr=node_cidr, base=c.base)
    try:
        outside.create()
        for node in nodes:
            outside.route_from(node)
        (c.base / "pods.yaml").write_text(PODS.format(node1=nodes[0], node2=nodes[1]))
        assert c.skiff("apply", "-f", str(c.base / "pods.yaml")).returncode == 0
        ips = wait_for("the pods Running with an IP", lambda: _pods_running(c, {"web", "friend", "stranger", "neighbour"}))

        def web(pod: str):
            return _get(c, pod, ips["web"], 8080, "/cgi-bin/ip")

        for pod in ("friend", "stranger", "neighbour"):
            assert wait_for(f"{pod} reaches web", lambda pod=pod: web(pod)) == ips[pod]

        def apply(text: str, file: str) -> None:
            (c.base / file).write_text(text)
            done = c.skiff("apply", "-f", str(c.base / file))
            assert done.returncode == 0, done.stderr

        # A policy with a bad CIDR is refused whole, naming the field.
        bad = DENY_INGRESS.replace("policyTypes: [Ingress]", "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]")
        (c.base / "bad.yaml").write_text(bad)
        refused = c.skiff("apply", "-f", str(c.base / "bad.yaml"))
        assert refused.returncode != 0 and "spec.ingress[0].from[0].ipBlock.cidr" in refused.stderr, refused.stderr
        assert "default-deny-ingress" not in c.skiff("get", "netpol").stdout

        # Default deny: nobody reaches web, across nodes or from its own node's bridge.
        apply(DENY_INGRESS, "deny.yaml")
        listed = c.skiff("get", "netpol")
        assert listed.stdout.split()[:4] == ["NAME", "POD-SELECTOR", "AGE", "default-deny-ingress"], listed.stdout
        for pod in ("friend", "stranger", "neighbour"):
            wait_for(f"{pod} blocked from web", lambda pod=pod: web(pod) is None, timeout=60)

        # The allow rule re-opens web for the labelled client only (by the named port).
        apply(ALLOW_CLIENTS, "allow.yaml")
        assert wait_for("friend reaches web again", lambda: web("friend"), timeout=60) == ips["friend"]
        assert web("stranger") is None and web("neighbour") is None

        # Egress: the labelled client may reach pods only; the outside host is blocked for it, not for others.
        assert wait_for("friend reaches the outside host", lambda: fetch_outside(c, "friend"))
        apply(DENY_CLIENT_EGRESS, "egress.yaml")
        wait_for("friend blocked from the outside host", lambda: fetch_outside(c, "friend") is None, timeout=60)
        assert fetch_outside(c, "stranger") is not None
        assert web("friend") == ips["friend"]      # pods are still allowed by its egress rule

        # Deleting the policies lifts every restriction.
        for policy in ("default-deny-ingress", "web-from-clients", "clients-stay-in"):
            assert c.skiff("delete", "networkpolicy", policy).returncode == 0
        assert wait_for("stranger reaches web again", lambda: web("stranger"), timeout=60) == ips["stranger"]
        table = json.loads(__import__("subprocess").run(
            ["ip", "netns", "exec", nodes[1], "nft", "-j", "list", "chain", "inet", f"{nodes[1]}", "np-ingress"],
            capture_output=True, text=True, check=True).stdout)
        assert not [item for item in table["nftables"] if "rule" in item]
    finally:
        outside.remove()
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
