"""Draining a node on `skiff up --nodes 2`, with the real runtime: a
Deployment of 2 whose PodDisruptionBudget keeps 1 available is moved off a
node by `skiff drain` (the second eviction waits on 429 until the first pod's
replacement is Ready on the other node), then back by the real kubectl's
`kubectl drain --ignore-daemonsets` through the REST front door. A DaemonSet's
pods are refused without --ignore-daemonsets and stay with it, as Kubernetes'.

Root and the real kernel; no packet leaves the machine (the nodes' link is a
private one in namespaces the test's cluster creates).
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_nodes import leftovers

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-pdb}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nodeagent}
spec:
  selector: {matchLabels: {app: nodeagent}}
  template:
    metadata: {labels: {app: nodeagent}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def test_drain_moves_a_budgeted_deployment_between_nodes(private_cluster):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    c = private_cluster
    name = f"skiffdr{c.tag[:2]}"
    node_cidr = f"10.213.{1 + int(c.tag[2:4], 16) % 254}.0/24"
    up = c.skiff(*c.up_args("--detach", "--nodes", "2", "--name", name, "--node-cidr", node_cidr)[3:], timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    one, two = f"{name}-node-1", f"{name}-node-2"

    def web_pods() -> list[dict]:
        listed = json.loads(c.skiff("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        return [p for p in listed if not p["metadata"].get("deletionTimestamp")]

    def ready_on(node: str):
        pods = web_pods()
        ok = len(pods) == 2 and all(p["spec"].get("nodeName") == node and any(
            cond["type"] == "Ready" and cond["status"] == "True" for cond in p["status"].get("conditions", []))
            for p in pods)
        return pods if ok else None

    def budget() -> dict:
        return json.loads(c.skiff("get", "pdb", "web-pdb", "-o", "json").stdout)["status"]

    # Both web pods on node 1 (node 2 cordoned meanwhile), then node 2 open again.
    assert c.skiff("cordon", two).stdout == f"node/{two} cordoned\n"
    manifest = c.base / "web.yaml"
    manifest.write_text(MANIFESTS)
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    wait_for("both web pods Ready on node 1", lambda: ready_on(one), timeout=180)
    assert c.skiff("uncordon", two).stdout == f"node/{two} uncordoned\n"
    status = wait_for("the budget allows one disruption", lambda: (s := budget()).get("disruptionsAllowed") == 1 and s)
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (2, 1, 2)
    table = c.skiff("get", "pdb").stdout.splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["web-pdb", "1", "N/A", "1"]
    wait_for("a DaemonSet pod on node 1", lambda: any(
        p["spec"].get("nodeName") == one
        for p in json.loads(c.skiff("get", "pods", "-l", "app=nodeagent", "-o", "json").stdout)["items"]))

    # Without --ignore-daemonsets: refused as kubectl words it, nothing evicted.
    refused = c.skiff("drain", one)
    assert refused.returncode == 1
    assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/nodeagent-" \
        in refused.stderr
    assert ready_on(one)

    # skiff drain: one pod may go at once; the other waits (429) until its replacement is Ready on node 2.
    drained = c.skiff("drain", one, "--ignore-daemonsets", "--timeout", "240s", timeout=300)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    out = drained.stdout.splitlines()
    assert out[0] == f"node/{one} already cordoned" and out[-1] == f"node/{one} drained"
    assert sum(line.startswith("pod/web-") and line.endswith(" evicted") for line in out) == 2
    assert f"error when evicting pods/\"" in drained.stderr and f"(will retry after 5s): {REFUSED}" in drained.stderr
    assert "Warning: ignoring DaemonSet-managed Pods: default/nodeagent-" in drained.stderr
    wait_for("both web pods Ready on node 2", lambda: ready_on(two), timeout=120)
    node = json.loads(c.skiff("get", "node", one, "-o", "json").stdout)
    assert node["spec"].get("unschedulable") is True

    # The real kubectl drains node 2 through the REST front door the same way.
    assert c.skiff("uncordon", one).returncode == 0
    wait_for("the budget allows one disruption again", lambda: budget().get("disruptionsAllowed") == 1)
    k = subprocess.run([kubectl, "--cache-dir", str(c.base / "kube-cache"), "drain", two, "--ignore-daemonsets",
                        "--timeout=240s"], env=c.env(), capture_output=True, text=True, timeout=300)
    assert k.returncode == 0, k.stdout + k.stderr
    lines = k.stdout.splitlines()
    assert lines[0] == f"node/{two} cordoned" and lines[-1] == f"node/{two} drained", k.stdout
    assert sum(line.startswith("evicting pod default/web-") for line in lines) >= 2
    assert sum(line.startswith("pod/web-") and line.endswith(" evicted") for line in lines) == 2
    assert f"(will retry after 5s): {REFUSED}" in k.stderr
    wait_for("both web pods Ready on node 1 again", lambda: ready_on(one), timeout=120)

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr]) == {}
