"""The Deployment part of deploy/demo.sh against a private two-node lab, asserting
what the user sees: an image imported and built on the host runs on both nodes
(one image store for the nodes of a machine, decision 22), the web server's
Deployment puts one pod on each node (hostPort 5000: the scheduler's NodePorts
filter), each node's IP answers from its own pod, and after `skiff set image`
and `skiff rollout status` every node answers v2.

Root and the real kernel. Traffic goes only to the lab's node IPs, which live in
namespaces the test's cluster creates (tests/e2e/test_nodes.py).
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_nodes import leftovers
from tests.e2e.test_web_server import _cached_base

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.root]

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "web-server"


def _answer(url: str) -> str | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through a proxy
    try:
        with opener.open(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_web_server_deployment_one_pod_per_node_then_v2_everywhere(private_cluster):
    c = private_cluster
    name = f"skiff{c.tag[:4]}"
    node_cidr = f"10.213.{1 + int(c.tag[:2], 16) % 254}.0/24"   # never the demo's 10.213.0.0/24
    up = c.skiff(*c.up_args("--detach", "--nodes", "2", "--name", name, "--node-cidr", node_cidr)[3:], timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    nodes = [f"{name}-node-1", f"{name}-node-2"]

    # On the host, into DATA/images: the base loaded, v1 and v2 built. No node's own directory holds an image.
    data = ["--data-dir", str(c.data_dir)]
    loaded = c.skiff("image", "load", *data, "-i", str(_cached_base()), "--quiet", timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    for version in ("v1", "v2"):
        built = c.skiff("build", *data, "--build-arg", f"VERSION={version}", "-t", f"my-web-server:{version}",
                        str(EXAMPLE), timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr
    assert not list((c.data_dir / "nodes").glob("*/images")), "a node has an image store of its own"

    applied = c.skiff("apply", "-f", str(EXAMPLE / "deployment.yaml"))
    assert (applied.returncode, applied.stdout) == (0, "deployment/web-server created\n"), applied.stderr
    status = c.skiff("rollout", "status", "deploy/web-server", "--timeout", "180s", timeout=200)
    assert status.returncode == 0, status.stdout + status.stderr + c.skiff("get", "pods", "-o", "wide").stdout
    assert 'deployment "web-server" successfully rolled out' in status.stdout

    def pods() -> list[dict]:
        listed = json.loads(c.skiff("get", "pods", "-l", "app=web-server", "-o", "json").stdout)["items"]
        return [p for p in listed if not p["metadata"].get("deletionTimestamp")]

    # One pod on each node: hostPort 5000 fits once per node.
    assert sorted(p["spec"]["nodeName"] for p in pods()) == nodes
    listed = json.loads(c.skiff("get", "nodes", "-o", "json").stdout)["items"]
    node_ips = {n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
                for n in listed}

    def every_node_answers(version: str) -> dict[str, str] | None:
        by_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods()}
        answers = {}
        for node in nodes:
            body = _answer(f"http://{node_ips[node]}:5000/")
            # Each node answers from its own pod, which says its version and its node.
            if body != f"Hello from Skiff! I am {by_node.get(node)}, version {version}, on node {node}\n":
                return None
            answers[node] = body
        return answers

    wait_for("each node's IP answers v1 from its own pod", lambda: every_node_answers("v1"), timeout=60)
    v1_pods = {p["metadata"]["name"] for p in pods()}

    # The demo's Service: NodePort 30500 on every node's IP answers from any of the pods.
    applied = c.skiff("apply", "-f", str(EXAMPLE / "service.yaml"))
    assert (applied.returncode, applied.stdout) == (0, "service/web-server created\n"), applied.stderr

    def service_answers() -> set[str] | None:
        bodies = [_answer(f"http://{node_ips[node]}:30500/") for node in nodes for _ in range(10)]
        return {b.split(",")[0].rsplit(" ", 1)[-1] for b in bodies} if all(bodies) else None

    assert wait_for("the Service answers on every node's port 30500 from every pod", lambda: (
        answered if (answered := service_answers()) == v1_pods else None), timeout=60) == v1_pods

    # The rolling update: one node at a time (maxSurge 0, maxUnavailable 1), then v2 everywhere.
    assert c.skiff("set", "image", "deploy/web-server", "web=my-web-server:v2").returncode == 0
    cause = "kubernetes.io/change-cause=skiff set image deploy/web-server web=my-web-server:v2"
    assert c.skiff("annotate", "deploy/web-server", cause, "--overwrite").returncode == 0
    status = c.skiff("rollout", "status", "deploy/web-server", "--timeout", "180s", timeout=200)
    assert status.returncode == 0, status.stdout + status.stderr
    wait_for("each node's IP answers v2 from a new pod", lambda: every_node_answers("v2"), timeout=60)
    assert not v1_pods & {p["metadata"]["name"] for p in pods()}
    assert sorted(p["spec"]["nodeName"] for p in pods()) == nodes
    history = c.skiff("rollout", "history", "deploy/web-server").stdout
    rows = [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()]
    assert rows == [["1", "skiff apply -f manifests/examples/web-server/deployment.yaml (v1)"],
                    ["2", "skiff set image deploy/web-server web=my-web-server:v2"]], history

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge", "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(name, [node_cidr]) == {}
