"""The service proxy on `skiff up --nodes 3`: a Deployment of 3 behind a NodePort
Service, reached through its ClusterIP from a pod on every node (connections counted
per endpoint), through the NodePort on every node's IP from the host, and a
LoadBalancer Service on its ingress IPs; a rolling update under a client loop losing
nothing; a Service with no endpoints refusing at once. (tests/e2e/test_services.py
covers the API side: allocation, EndpointSlices, ServiceLB.)

Root and the real kernel. No packet leaves the machine: the nodes are network
namespaces on a private link the test's cluster creates (tests/e2e/test_nodes.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_nodes import leftovers

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

NODE_PORT = 30080
GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"   # busybox's wget crashes resolving in a static build; nc it is

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: busybox
        # Each pod answers with its own name.
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
        # As Kubernetes advises: keep serving while the endpoint's removal reaches every node.
        lifecycle: {preStop: {exec: {command: ["sleep", "8"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: %(node_port)d}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 8081, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
"""

CLIENT = """\
apiVersion: v1
kind: Pod
metadata: {name: client-%(index)d}
spec:
  nodeName: %(node)s
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""


def test_cluster_ip_and_node_port_spread_over_every_endpoint_from_every_node(private_cluster):
    c = private_cluster
    name = f"skiffsp{c.tag[:2]}"
    node_cidr = f"10.215.{int(c.tag[:2], 16)}.0/24"
    cluster_cidr = f"10.{100 + int(c.tag, 16) % 100}.0.0/16"
    up = subprocess.run(c.up_args("--detach", "--nodes", "3", "--name", name, "--node-cidr", node_cidr),
                        env=c.env(), capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    nodes = [f"{name}-node-{i}" for i in (1, 2, 3)]
    listed = json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]
    node_ips = [next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP") for n in listed]

    manifest = c.base / "app.yaml"
    manifest.write_text(APP % {"node_port": NODE_PORT} + "---\n" + "---\n".join(
        CLIENT % {"index": i, "node": node} for i, node in enumerate(nodes, start=1)))
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def ready_endpoints():
        slices = json.loads(c.skiff("get", "endpointslices", "-o", "json").stdout)["items"]
        ips = [ep["addresses"][0] for s in slices if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web"
               for ep in s.get("endpoints", []) if ep.get("conditions", {}).get("ready", True)]
        return sorted(ips) if len(ips) == 3 else None

    def running_clients():
        pods = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"]
        return sum(1 for p in pods if p["metadata"]["name"].startswith("client-")
                   and p["status"].get("phase") == "Running") == 3

    wait_for("the Deployment's 3 pods ready in the Service's EndpointSlices", ready_endpoints, timeout=180)
    wait_for("a client pod running on every node", running_clients, timeout=120)
    pods = json.loads(c.skiff("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    web_pods = sorted(p["metadata"]["name"] for p in pods)
    services = {s["metadata"]["name"]: s for s in json.loads(c.skiff("get", "services", "-o", "json").stdout)["items"]}
    cluster_ip = services["web"]["spec"]["clusterIP"]
    assert services["web"]["spec"]["ports"][0]["nodePort"] == NODE_PORT

    # From a pod on each node, 30 connections to the ClusterIP reach all three endpoints.
    for i in (1, 2, 3):
        def answers(i=i):
            out = c.skiff("exec", f"client-{i}", "--", "sh", "-c",
                          f"for n in $(seq 30); do {GET} | nc -w 5 {cluster_ip} 80 | tail -n 1 | grep . "
                          "|| echo failed; done", timeout=180)
            return out.stdout.split() if out.returncode == 0 and "failed" not in out.stdout else None
        counts = Counter(wait_for(f"client-{i} answered through {cluster_ip}", answers, timeout=60))
        assert sorted(counts) == web_pods, (i, counts)
        assert sum(counts.values()) == 30

    # The NodePort answers on every node's IP, from the host, spreading over the endpoints too.
    seen: Counter = Counter()
    for node_ip in node_ips:
        for _ in range(15):
            try:
                with urllib.request.urlopen(f"http://{node_ip}:{NODE_PORT}/", timeout=10) as reply:
                    seen[reply.read().decode().strip()] += 1
            except OSError as exc:
                seen[f"{node_ip}: {exc}"] += 1
    assert sorted(seen) == web_pods, seen

    # A LoadBalancer Service (ServiceLB's way: the Ready nodes' IPs are its ingress) answers
    # on every ingress IP at its own port, as a NodePort does.
    def ingress():
        svc = json.loads(c.skiff("get", "service", "web-lb", "-o", "json").stdout)
        ips = sorted(i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []))
        return ips if len(ips) == 3 else None

    seen = Counter()
    for lb_ip in wait_for("the LoadBalancer's ingress IPs", ingress, timeout=60):
        def answered(lb_ip=lb_ip):
            try:
                with urllib.request.urlopen(f"http://{lb_ip}:8081/", timeout=10) as reply:
                    return reply.read().decode().strip()
            except OSError:
                return None
        seen[wait_for(f"{lb_ip}:8081 answers", answered, timeout=30)] += 1
        for _ in range(9):
            seen[answered() or f"{lb_ip}: no answer"] += 1
    assert sorted(seen) == web_pods, seen

    # A rolling update under a client loop loses no request: new pods join when ready, old
    # ones leave the endpoints when terminating and keep serving through their preStop.
    loop = subprocess.Popen(
        [sys.executable, "-m", "skiff.cli.main", "exec", "client-2", "--", "sh", "-c",
         f"for n in $(seq 200); do {GET} | nc -w 5 {cluster_ip} 80 | tail -n 1 | grep . || echo failed; "
         "sleep 0.1; done"], cwd=c.base, env=c.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        restarted = c.skiff("rollout", "restart", "deploy/web")
        assert restarted.returncode == 0, restarted.stderr
        status = c.skiff("rollout", "status", "deploy/web", "--timeout", "240s", timeout=300)
        assert status.returncode == 0, status.stdout + status.stderr
        out, err = loop.communicate(timeout=300)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.communicate()
    answers = Counter(out.split())
    new_pods = sorted(p["metadata"]["name"] for p in json.loads(
        c.skiff("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"])
    assert answers["failed"] == 0, (answers, err)
    assert sum(answers.values()) == 200
    assert set(answers) & set(new_pods), answers   # the loop outlived the rollout's first new pod

    # A Service whose selector matches nothing refuses at once (no hang until a timeout).
    nobody = services["nobody"]["spec"]["clusterIP"]
    started = time.monotonic()
    out = c.skiff("exec", "client-1", "--", "sh", "-c", f"{GET} | nc -w 20 {nobody} 80")
    assert out.returncode != 0
    assert "Connection refused" in out.stderr + out.stdout, out.stderr
    print(f"refused after {time.monotonic() - started:.2f}s (exec included)")

    # Each node has the service table; down --purge leaves nothing with the cluster's name.
    for node in nodes:
        tables = subprocess.run(["ip", "netns", "exec", node, "nft", "list", "tables"], capture_output=True,
                                text=True, check=True).stdout
        assert f"table ip {node}-svc" in tables
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr, cluster_cidr]) == {}
