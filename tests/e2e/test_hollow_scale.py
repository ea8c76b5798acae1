"""Scale (issue 17): `skiff up --hollow-nodes 100` schedules and runs a 3000-pod
Deployment, then scales it to 0 with nothing left — through the same commands a
user types, against a private cluster (its own dirs, ports and client config).

A hollow node (agent/hollow.py, decision 29) runs the agent's own pod logic over
the in-memory runtime; what it leaves on disk per pod is the pod's directory
under the hollow process' scratch dir (`RUN/hollow/skiff-hollow-*/NODE/`), made
when the pod starts and removed when it is released — so "nothing left on the
nodes" is checked there, beside the API's view.
"""
from __future__ import annotations

import asyncio
import collections
import json
import time
from pathlib import Path

import pytest

from skiff.api import meta
from skiff.client import ApiClient
from skiff.config import resolve_credentials, resolve_server

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

NODES = 100
REPLICAS = 3000

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: scale}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: scale}}}}
  template:
    metadata: {{labels: {{app: scale}}}}
    spec:
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.9
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"""


def pod_dirs(run_dir: Path) -> dict[str, int]:
    """Per hollow node, how many pod directories it holds on disk."""
    out: dict[str, int] = {}
    for scratch in (run_dir / "hollow").glob("skiff-hollow-*"):
        for node in scratch.iterdir():
            out[node.name] = sum(1 for _ in node.iterdir()) if node.is_dir() else 0
    return out


async def _watch_until(cluster, *, want_running: int | None, timeout: float) -> dict[str, int]:
    """Watch the Deployment's pods until `want_running` are Running and Ready (or, with None,
    until none is left); returns the Running pods per node."""
    env = cluster.env()   # the server and credentials of the client config `up` wrote, as `skiff` uses them
    async with ApiClient(resolve_server(flag=None, env=env), credentials=resolve_credentials(env=env)) as c:
        pods, rv = await c.list("Pod", "default", label_selector="app=scale", timeout=120)
        seen = {p.metadata.name: p for p in pods}
        running = {name for name, p in seen.items() if _running(p)}   # kept as events come: 3000 pods

        def done() -> bool:
            return not seen if want_running is None else len(running) >= want_running
        deadline = time.monotonic() + timeout
        while not done():
            try:
                async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                    async for kind, pod, rv in c.watch("Pod", "default", label_selector="app=scale",
                                                       resource_version=rv):
                        if pod is None:
                            continue
                        name = pod.metadata.name
                        if kind == "DELETED":
                            seen.pop(name, None)
                        else:
                            seen[name] = pod
                        (running.add if kind != "DELETED" and _running(pod) else running.discard)(name)
                        if done():
                            break
            except TimeoutError:
                phases = collections.Counter(p.status.phase or "Pending" for p in seen.values())
                raise AssertionError(f"after {timeout:g}s: {len(seen)} pods, phases {dict(phases)}") from None
        return dict(collections.Counter(p.spec.node_name for p in seen.values() if _running(p)))


def deployment_shows(c, columns: list[str], *, timeout: float = 120) -> None:
    """`skiff get deployment scale` shows NAME READY UP-TO-DATE AVAILABLE as `columns` (status is
    written by the controller after the pods' events: wait for it)."""
    deadline = time.monotonic() + timeout
    while True:
        got = c.skiff("get", "deployment", "scale")
        assert got.returncode == 0, got.stderr
        if got.stdout.split("\n")[1].split()[:4] == columns:
            return
        assert time.monotonic() < deadline, got.stdout
        time.sleep(1)


def _running(pod) -> bool:
    ready = meta.get_condition(pod.status.conditions, "Ready")
    return pod.status.phase == "Running" and ready is not None and ready.status == "True" \
        and not pod.metadata.HasField("deletion_timestamp")


def test_100_hollow_nodes_run_a_3000_pod_deployment_and_scale_it_to_0(private_cluster):
    c = private_cluster
    began = time.monotonic()
    up = c.skiff(*c.up_args("--detach", "--no-agent", "--hollow-nodes", str(NODES), "--start-timeout", "300")[3:],
                 timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    nodes = c.skiff("get", "nodes", "-o", "json")
    assert nodes.returncode == 0, nodes.stderr
    ready = [n["metadata"]["name"] for n in json.loads(nodes.stdout)["items"]
             if any(cond["type"] == "Ready" and cond["status"] == "True" for cond in n["status"]["conditions"])]
    assert len(ready) == NODES, ready
    print(f"\n{NODES} hollow nodes up in {time.monotonic() - began:.0f}s", flush=True)

    (c.base / "scale.yaml").write_text(DEPLOYMENT)
    applied = c.skiff("apply", "-f", str(c.base / "scale.yaml"))
    assert applied.returncode == 0 and applied.stdout == "deployment/scale created\n", applied
    began = time.monotonic()
    per_node = asyncio.run(_watch_until(c, want_running=REPLICAS, timeout=1500))
    print(f"{REPLICAS} pods Running in {time.monotonic() - began:.0f}s", flush=True)
    # Spread over the nodes: every node runs some, none more than its pod capacity (110).
    assert sum(per_node.values()) == REPLICAS and len(per_node) == NODES, per_node
    assert max(per_node.values()) <= 110, per_node
    # What a user reads: the Deployment's columns, once its status caught up with the pods.
    deployment_shows(c, ["scale", f"{REPLICAS}/{REPLICAS}", str(REPLICAS), str(REPLICAS)])
    # Each running pod has its directory on its hollow node (a pod still terminating may have one too).
    dirs = pod_dirs(c.run_dir)
    assert all(dirs.get(node, 0) >= count for node, count in per_node.items()), (dirs, per_node)

    scaled = c.skiff("scale", "deployment", "scale", "--replicas", "0")
    assert scaled.returncode == 0 and scaled.stdout == "deployment/scale scaled\n", scaled
    began = time.monotonic()
    asyncio.run(_watch_until(c, want_running=None, timeout=1500))
    print(f"scaled to 0 in {time.monotonic() - began:.0f}s", flush=True)
    got = c.skiff("get", "pods")
    assert got.returncode == 0 and got.stdout == "" and "No resources found in default namespace." in got.stderr, got
    deployment_shows(c, ["scale", "0/0", "0", "0"])
    got = c.skiff("get", "replicasets", "-o", "json")
    assert [(rs["spec"].get("replicas", 0), rs.get("status", {}).get("replicas", 0))
            for rs in json.loads(got.stdout)["items"]] == [(0, 0)], got.stdout
    # Nothing left on the nodes: every pod's directory was removed with the pod.
    assert sum(pod_dirs(c.run_dir).values()) == 0, pod_dirs(c.run_dir)
