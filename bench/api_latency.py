"""API call latency with 10 000 pods stored, against Kubernetes' API SLOs.

    python bench/api_latency.py [--pods 10000] [--ops 600] [--rate 20] [--watchers 100] [--events 100]

A private etcd and control plane (bench/_cluster.py) serving the API only
(`--no-controllers`: no scheduler or controller writes beside the
measurement), `--pods` pods stored (bound to made-up nodes, as in a running
cluster; created 32 calls in flight). Then, from one client process:

  churn    `--ops` calls at `--rate` a second, in turn: create, get, update
           (a label), list in a small namespace, delete. Mutating = create,
           update, delete; non-mutating = get and the namespaced list.
           Kubernetes' SLO: p99 <= 1 s for single-object calls (over 5 min);
           Skiff's goal: p99 <= 25 ms.
  LIST     a cluster-wide list of every pod, 3 times. SLO: p99 <= 30 s;
           goal <= 1 s.
  watch    `--watchers` watches of one namespace; `--events` updates to a pod
           there at `--rate`/s, each carrying its send time; delivery latency
           = arrival - send, over every watcher and event.
           Kubernetes' watch latency SLI has no threshold (<= 5 s is the
           density test's bound); Skiff's goal: p99 <= 100 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import create_all, hollow_cluster, percentile  # noqa: E402
from proto.skiff.v1 import serviceaccounts_pb2, types_pb2  # noqa: E402
from skiff.client import ApiClient  # noqa: E402

SLO_CALL, GOAL_CALL = 1.0, 0.025
SLO_LIST, GOAL_LIST = 30.0, 1.0
REF_WATCH, GOAL_WATCH = 5.0, 0.1


def pod(name: str, namespace: str = "default", node: str = "") -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name, p.metadata.namespace = name, namespace
    p.metadata.labels.update({"app": "bench", "tier": "web"})
    p.spec.node_name = node
    c = p.spec.containers.add(name="web", image="registry.k8s.io/pause:3.9")
    c.resources.requests.update({"cpu": "100m", "memory": "64Mi"})
    c.ports.add(container_port=8080, protocol="TCP")
    return p


def namespace(name: str) -> types_pb2.Namespace:
    ns = types_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = name
    return ns


async def with_default_account(c: ApiClient, name: str, *, create: bool = True) -> None:
    """The namespace (unless it exists) and its `default` ServiceAccount: with --no-controllers
    nothing else makes the account, and a secure API refuses pods without it."""
    if create:
        await c.create(namespace(name))
    sa = serviceaccounts_pb2.ServiceAccount(api_version="v1", kind="ServiceAccount")
    sa.metadata.name, sa.metadata.namespace = "default", name
    await c.create(sa)


async def churn(c: ApiClient, *, ops: int, rate: float) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {"mutating": [], "non-mutating": []}
    period = 1.0 / rate
    start = time.perf_counter()
    i = 0
    for op in range(ops):
        await asyncio.sleep(max(0.0, start + op * period - time.perf_counter()))
        step = op % 5
        name = f"churn-{i}"
        t = time.perf_counter()
        if step == 0:
            await c.create(pod(name, "churn"))
            kind = "mutating"
        elif step == 1:
            await c.get("Pod", name, "churn")
            kind = "non-mutating"
        elif step == 2:
            got = await c.get("Pod", name, "churn")
            t = time.perf_counter()   # the update alone
            got.metadata.labels["touched"] = "yes"
            await c.update(got)
            kind = "mutating"
        elif step == 3:
            await c.list("Pod", "churn")
            kind = "non-mutating"
        else:
            await c.delete("Pod", name, "churn", grace_period_seconds=0)
            kind = "mutating"
            i += 1
        seen[kind].append(time.perf_counter() - t)
    return seen


async def watch_delivery(cluster, *, watchers: int, events: int, rate: float) -> list[float]:
    clients = [cluster.client() for _ in range(4)]
    latencies: list[float] = []
    ready = 0
    all_ready = asyncio.Event()

    async def watch(c: ApiClient) -> None:
        nonlocal ready
        got = 0
        stream = c.watch("Pod", "watched")
        first = True
        async for _type, obj, _rv in stream:
            if first:
                first = False
            if obj is None or "sent" not in obj.metadata.annotations:
                continue
            latencies.append(time.time() - float(obj.metadata.annotations["sent"]))
            got += 1
            if got >= events:
                return

    writer = clients[0]
    await with_default_account(writer, "watched")
    target = await writer.create(pod("target", "watched"))
    tasks = [asyncio.create_task(watch(clients[i % len(clients)])) for i in range(watchers)]
    await asyncio.sleep(2.0)   # every watch open
    for n in range(events):
        target.metadata.annotations["sent"] = repr(time.time())
        target.metadata.annotations["n"] = str(n)
        target = await writer.update(target)
        await asyncio.sleep(1.0 / rate)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    except asyncio.TimeoutError:
        print(f"  watch: only {len(latencies)}/{watchers * events} deliveries within 60 s", flush=True)
        for t in tasks:
            t.cancel()
    for c in clients:
        await c.close()
    return latencies


def row(label: str, value: float, *, reference: float, goal: float, unit: str = "ms") -> None:
    scale = 1000 if unit == "ms" else 1
    verdict = "met" if value <= goal else f"MISSED ({value / goal:.1f}x the goal)"
    print(f"{label:38}{value * scale:9.1f}{unit:>3}{reference * scale:10.0f}{unit:>3}{reference / value:9.1f}x"
          f"   goal <= {goal * scale:g}{unit}: {verdict}", flush=True)


async def measure(cluster, a: argparse.Namespace) -> None:
    async with cluster.client() as c:
        await with_default_account(c, "default", create=False)
        await with_default_account(c, "churn")
        began = time.perf_counter()
        await create_all(c, [pod(f"stored-{i}", node=f"node-{i % 100}") for i in range(a.pods)])
        took = time.perf_counter() - began
        print(f"{a.pods} pods stored in {took:.1f}s ({a.pods / took:.0f} creates/s, 32 in flight)", flush=True)
        seen = await churn(c, ops=a.ops, rate=a.rate)
        lists = []
        for _ in range(3):
            t = time.perf_counter()
            items, _ = await c.list("Pod", "", timeout=120)
            lists.append(time.perf_counter() - t)
        assert len(items) >= a.pods, len(items)
    latencies = await watch_delivery(cluster, watchers=a.watchers, events=a.events, rate=a.rate)
    print(f"{'':38}{'Skiff':>12}{'Kubernetes':>13}{'ratio':>10}")
    for kind in ("mutating", "non-mutating"):
        values = seen[kind]
        row(f"{kind} p99 ({len(values)} calls at {a.rate:g}/s)", percentile(values, 99),
            reference=SLO_CALL, goal=GOAL_CALL)
        print(f"{'':4}p50 {percentile(values, 50) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms")
    row(f"LIST all {a.pods} pods (max of 3)", max(lists), reference=SLO_LIST, goal=GOAL_LIST, unit="s")
    row(f"watch delivery p99 ({a.watchers} watchers)", percentile(latencies, 99),
        reference=REF_WATCH, goal=GOAL_WATCH)
    print(f"{'':4}p50 {percentile(latencies, 50) * 1000:.1f} ms over {len(latencies)} deliveries")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--ops", type=int, default=600)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--events", type=int, default=100)
    a = p.parse_args()
    with hollow_cluster(nodes=0, controlplane_flags=("--no-controllers",)) as cluster:
        asyncio.run(measure(cluster, a))


if __name__ == "__main__":
    main()
