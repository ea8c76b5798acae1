"""Services on a real node: `skiff expose` a Deployment of busybox pods whose
readiness a file decides, and the EndpointSlice follows the pods as the agent
reports them — their real IPs, ready, then not ready when the probe fails,
gone with the pod — as kubectl shows it (`get endpointslices`, `get ep`); a
LoadBalancer Service gets the node's address."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sh, -c, "touch /tmp/ready; exec sleep 3600"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 1
"""


def test_endpoints_follow_the_pods_on_a_real_node(private_cluster):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    c = private_cluster
    assert c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox").returncode == 0
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr

    def k(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl, "--cache-dir", str(c.base / "kube-cache"), *args], env=c.env(),
                              capture_output=True, text=True, timeout=120, input=input)

    svc = k("get", "svc", "kubernetes", "--no-headers")
    assert svc.stdout.split()[:3] == ["kubernetes", "ClusterIP", "10.96.0.1"], svc.stderr
    applied = k("apply", "-f", "-", input=DEPLOYMENT)
    assert applied.returncode == 0, applied.stderr
    exposed = c.skiff("expose", "deploy/web", "--port", "80", "--target-port", "http")
    assert (exposed.returncode, exposed.stdout.strip()) == (0, "service/web exposed"), exposed.stderr

    def pod_ips() -> dict[str, str]:
        pods = json.loads(k("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in pods
                if not p["metadata"].get("deletionTimestamp")}

    def endpoints() -> dict[str, tuple[bool, bool, bool]]:
        slices = json.loads(k("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o",
                              "json").stdout)["items"]
        return {e["addresses"][0]: (e["conditions"].get("ready", False), e["conditions"].get("serving", False),
                                    e["conditions"].get("terminating", False))
                for s in slices for e in s.get("endpoints") or []}

    ips = wait_for("pod IPs", lambda: (lambda got: got if len(got) == 2 and all(got.values()) else None)(pod_ips()))
    wait_for("both endpoints ready", lambda: endpoints() == {ip: (True, True, False) for ip in ips.values()})
    slices = json.loads(k("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json").stdout)
    [port] = slices["items"][0]["ports"]
    assert (port["port"], port["protocol"]) == (8080, "TCP")     # targetPort "http" resolved
    ep = k("get", "ep", "web", "--no-headers").stdout.split()
    assert sorted(ep[1].split(",")) == sorted(f"{ip}:8080" for ip in ips.values())

    # One pod's probe fails: its endpoint is neither ready nor serving; the Endpoints drop it.
    name, ip = sorted(ips.items())[0]
    assert k("exec", name, "--", "rm", "/tmp/ready").returncode == 0
    wait_for("the endpoint not ready", lambda: endpoints().get(ip) == (False, False, False))
    wait_for("the Endpoints without it",
             lambda: k("get", "ep", "web", "--no-headers").stdout.split()[1] == f"{ips[sorted(ips)[1]]}:8080")

    # Deleted: the pod leaves the slice (its replacement comes in).
    assert k("delete", "pod", name, "--wait=true").returncode == 0
    wait_for("the deleted pod gone from the slice", lambda: ip not in endpoints())
    described = k("describe", "svc", "web").stdout
    assert "TargetPort:               http/TCP" in described

    # LoadBalancer as k3s's ServiceLB: the Ready node's address, and a node port.
    assert c.skiff("expose", "deploy/web", "--name", "lb", "--type", "LoadBalancer", "--port", "81").returncode == 0
    node_ip = k("get", "nodes", "-o", "jsonpath={.items[0].status.addresses[?(@.type=='InternalIP')].address}").stdout
    assert node_ip
    row = wait_for("the load balancer's address", lambda: (lambda r: r if r[3] != "<pending>" else None)(
        k("get", "svc", "lb", "--no-headers").stdout.split()))
    assert row[1] == "LoadBalancer" and row[3] == node_ip and row[4].startswith("81:")
