"""Control-plane and etcd memory with thousands of pods on hollow nodes.

    python bench/controlplane_memory.py [--nodes 100] [--pods 1000,10000] [--timeout 1800]

A private cluster (bench/_cluster.py): etcd, the control plane with every
controller and the scheduler, and `--nodes` hollow nodes in one process. A
Deployment of pause pods (10m CPU, 16 MiB requested) is scaled to each count
in `--pods` in turn; once a watch of its pods has seen that many Running and
Ready (the hollow nodes wrote it) and a few seconds have passed, the VmRSS of the
control plane and of etcd is read. Prints them idle and at each count beside
Skiff's goals (control plane <= 200 MiB at 1000 pods, <= 500 MiB at 10 000),
and the hollow nodes' process for information. Kubernetes' reference:
kube-apiserver alone is typically ~1-2 GiB at a few thousand pods (it keeps a
watch cache of every object, decoded), so the ratio is against 1 GiB at 1000
and 2 GiB at 10 000 — a rough anchor, not a measurement here.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import hollow_cluster, rss_mib, wait_until  # noqa: E402
from proto.skiff.v1 import apps_pb2  # noqa: E402
from skiff.api import meta  # noqa: E402
from skiff.client import NotFound  # noqa: E402

GOALS = {1000: 200.0, 10000: 500.0}
K8S_APISERVER = {1000: 1024.0, 10000: 2048.0}


def deployment(replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "mem"
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "mem"
    d.spec.template.metadata.labels["app"] = "mem"
    c = d.spec.template.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    c.resources.requests.update({"cpu": "10m", "memory": "16Mi"})
    return d


async def scale_to(replicas: int, *, timeout: float, cluster) -> float:
    """Scale the Deployment (create it the first time) and wait, through a watch of its pods,
    until `replicas` of them are Running and Ready."""
    async with cluster.client() as c:
        began = time.monotonic()
        ready: set[str] = set()
        done = asyncio.Event()

        async def watch() -> None:
            async for _type, pod, _rv in c.watch("Pod", "default", label_selector="app=mem"):
                if pod is None:
                    continue
                cond = meta.get_condition(pod.status.conditions, "Ready")
                if _type != "DELETED" and pod.status.phase == "Running" and cond is not None \
                        and cond.status == "True" and not pod.metadata.HasField("deletion_timestamp"):
                    if pod.metadata.name not in ready and len(ready) % 500 == 499:
                        print(f"  {len(ready) + 1}/{replicas} Ready after {time.monotonic() - began:.0f}s",
                              flush=True)
                    ready.add(pod.metadata.name)
                else:
                    ready.discard(pod.metadata.name)
                if len(ready) >= replicas:
                    done.set()
        watcher = asyncio.create_task(watch())
        try:
            d = await c.get("Deployment", "mem")
            d.spec.replicas = replicas
            await c.update(d)
        except NotFound:
            await c.create(deployment(replicas))

        async def all_ready() -> bool:
            if watcher.done():
                watcher.result()
            return done.is_set()
        try:
            await wait_until(all_ready, timeout=timeout, what=f"{replicas} pods Ready", interval=1, cluster=cluster)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return time.monotonic() - began


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods", default="1000,10000")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--settle", type=float, default=10.0, help="seconds to wait after Ready before reading RSS")
    a = p.parse_args()
    rows = []
    with hollow_cluster(nodes=a.nodes) as cluster:
        time.sleep(a.settle)
        rows.append(("idle", 0, rss_mib(cluster.pids["controlplane"]), rss_mib(cluster.pids["etcd"]),
                     rss_mib(cluster.pids["hollow"])))
        for count in (int(x) for x in a.pods.split(",") if x):
            took = asyncio.run(scale_to(count, timeout=a.timeout, cluster=cluster))
            print(f"{count} pods Running on {a.nodes} hollow nodes after {took:.0f}s", flush=True)
            time.sleep(a.settle)
            rows.append((f"{count} pods", count, rss_mib(cluster.pids["controlplane"]),
                         rss_mib(cluster.pids["etcd"]), rss_mib(cluster.pids["hollow"])))
    print(f"{'':12}{'control plane':>15}{'etcd':>10}{'hollow nodes':>14}   {'goal (control plane)':<24}"
          f"{'vs kube-apiserver ~':>20}")
    for label, count, cp, etcd, hollow in rows:
        goal = GOALS.get(count)
        verdict = (f"<= {goal:.0f} MiB: " + ("met" if cp <= goal else f"MISSED ({cp / goal:.2f}x)")) if goal else ""
        ref = K8S_APISERVER.get(count)
        print(f"{label:12}{cp:11.0f} MiB{etcd:6.0f} MiB{hollow:10.0f} MiB   {verdict:<24}"
              + (f"{ref:8.0f} MiB {ref / cp:5.1f}x" if ref else ""))


if __name__ == "__main__":
    main()
