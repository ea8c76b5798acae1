"""Scheduler throughput: scheduler_perf's shapes, in one process and end to end.

    python bench/scheduler.py [--pods 5000] [--nodes 100,1000] [--e2e-nodes 100] [--shapes basic,anti,spread]

In process (the scheduler alone, as scheduler_perf measures it): the real
`Scheduler` (controlplane/scheduler) over `FakeApiClient` and a MemoryStore
(the API's registry logic, no etcd, no gRPC). N nodes (scheduler_perf's
node-default: 4 CPU, 32 GiB, 110 pods) and P pending pods are stored first;
the clock runs from the scheduler's start until the last bind returned.

Shapes (pods as scheduler_perf's templates, scaled to N nodes):
  basic   SchedulingBasic: pods requesting 50m CPU / 250 MiB, no constraints
          (half of scheduler_perf's pod-default, so 5000 pods fit on 100 nodes:
          80 a node by CPU; scheduler_perf runs them on 5000 nodes)
  anti    SchedulingPodAntiAffinity: each pod required-anti-affine to its own
          group on kubernetes.io/hostname (groups of N, so all fit)
  spread  TopologySpreading: maxSkew 1 over topology.kubernetes.io/zone (10
          zones), whenUnsatisfiable DoNotSchedule

End to end (`--e2e-nodes`, SchedulingBasic only): a private etcd, control
plane and hollow nodes (bench/_cluster.py; they report this machine's CPUs,
so these pods request 10m CPU to fit); P pods created through the API,
32 calls in flight; the clock runs from the first create until every pod has
spec.nodeName (observed through a watch) — creation throughput bounds it.

Prints pods/s beside Kubernetes' scheduler_perf threshold for SchedulingBasic
(270 pods/s) and Skiff's goal (>= 1000 pods/s in one process), as ratios.

Before/after the per-node cuts of decision 28 (docs/architecture.md), run
back to back on 2 busy cores, `--pods 500 --nodes 100,1000 --e2e-nodes ''`:
basic 315, 399 -> 741, 739 pods/s (100 nodes), 82, 77 -> 242, 226 (1000);
anti 99, 129 -> 103, 124 and 41 -> 70, 67; spread 183, 150 -> 236, 312 and
28, 32 -> 75, 67. Load swings these 2x: compare only back-to-back runs.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import create_all, hollow_cluster  # noqa: E402
from controlplane.metrics import Metrics  # noqa: E402
from controlplane.scheduler.scheduler import Scheduler  # noqa: E402
from controlplane.testing import FakeApiClient  # noqa: E402
from proto.skiff.v1 import types_pb2  # noqa: E402
from skiff.api import meta  # noqa: E402
from skiff.controller import EventHandler, Informer, SharedInformerFactory  # noqa: E402

K8S_BASIC = 270.0    # scheduler_perf's SchedulingBasic threshold, pods/s
GOAL = 1000.0        # Skiff's, in one process
ZONES = 10


def node(i: int) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = f"node-{i}"
    n.metadata.labels.update({"kubernetes.io/hostname": n.metadata.name,
                              "topology.kubernetes.io/zone": f"zone-{i % ZONES}"})
    for field in (n.status.capacity, n.status.allocatable):
        field.update({"cpu": "4", "memory": "32Gi", "pods": "110"})
    meta.set_condition(n.status.conditions, type_="Ready", status="True", reason="KubeletReady", heartbeat=True)
    return n


def pod(i: int, shape: str, nodes: int, *, cpu: str = "50m") -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = f"pod-{i}"
    p.metadata.namespace = "default"
    c = p.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    c.resources.requests.update({"cpu": cpu, "memory": "250Mi"})
    if shape == "anti":
        group = f"g{i // nodes}"
        p.metadata.labels["group"] = group
        term = p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add()
        term.label_selector.match_labels["group"] = group
        term.topology_key = "kubernetes.io/hostname"
    elif shape == "spread":
        p.metadata.labels["app"] = "spread"
        tsc = p.spec.topology_spread_constraints.add(max_skew=1, topology_key="topology.kubernetes.io/zone",
                                                    when_unsatisfiable="DoNotSchedule")
        tsc.label_selector.match_labels["app"] = "spread"
    return p


class CountingClient(FakeApiClient):
    """FakeApiClient that counts binds and notes when the last one returned."""

    def __init__(self) -> None:
        super().__init__()
        self.bound = 0
        self.last_bind = 0.0
        self.done = asyncio.Event()
        self.expected = 0

    async def bind(self, *args, **kwargs):
        result = await super().bind(*args, **kwargs)
        self.bound += 1
        self.last_bind = time.perf_counter()
        if self.bound >= self.expected:
            self.done.set()
        return result


async def in_process(*, nodes: int, pods: int, shape: str, timeout: float, profile: Path | None) -> float:
    c = CountingClient()
    for i in range(nodes):
        await c.create(node(i))
    for i in range(pods):
        await c.create(pod(i, shape, nodes))
    c.expected = pods
    factory = SharedInformerFactory(c)
    scheduler = Scheduler(client=c, factory=factory, metrics=Metrics())
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(c.done.wait(), timeout)
    except asyncio.TimeoutError:
        print(f"  timed out: {c.bound}/{pods} bound after {timeout:g}s", flush=True)
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()
    return c.bound / ((c.last_bind or time.perf_counter()) - started)


async def end_to_end(cluster, *, pods: int, timeout: float) -> tuple[float, float]:
    async with cluster.client() as client:
        bound: set[str] = set()
        done = asyncio.Event()
        last = [0.0]

        def seen(obj) -> None:
            if obj.spec.node_name and obj.metadata.name not in bound:
                bound.add(obj.metadata.name)
                last[0] = time.perf_counter()
                if len(bound) >= pods:
                    done.set()

        # An informer: it lists again whenever the watch ends (the server closes a watcher that
        # falls behind its buffer), else a lost watch would stall the clock.
        informer = Informer(client, "Pod", namespace="default")
        informer.add_event_handler(EventHandler(on_add=lambda _key, obj: seen(obj),
                                                on_update=lambda _key, _old, obj: seen(obj)))
        informer.start()
        await informer.wait_synced()
        started = time.perf_counter()
        # Hollow nodes report this machine's CPUs (2 here): 10m a pod, so 5000 fit on 100 of them.
        await create_all(client, [pod(i, "basic", 1, cpu="10m") for i in range(pods)])
        created = time.perf_counter() - started
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except asyncio.TimeoutError:
            print(f"  timed out: {len(bound)}/{pods} bound", flush=True)
        await informer.stop()
        return len(bound) / (last[0] - started), pods / created


def row(label: str, rate: float, *, reference: float | None, goal: float | None) -> None:
    ref = f"{reference:10.0f}/s{rate / reference:8.2f}x" if reference else f"{'n/a':>12}{'':9}"
    verdict = f"   goal >= {goal:.0f}/s: {'met' if rate >= goal else f'MISSED ({rate / goal:.2f}x)'}" if goal else ""
    print(f"{label:44}{rate:9.0f}/s{ref}{verdict}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--nodes", default="100,1000", help="node counts for the in-process runs")
    p.add_argument("--shapes", default="basic,anti,spread")
    p.add_argument("--e2e-nodes", default="100", help="hollow node counts for the end-to-end run ('' none)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--profile", type=Path, default=None, help="cProfile the first in-process run into this file")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("controlplane.scheduler").setLevel(logging.ERROR)
    print(f"{'':44}{'Skiff':>11}{'Kubernetes':>12}{'ratio':>9}", flush=True)
    profile = a.profile
    for shape in filter(None, a.shapes.split(",")):
        for n in (int(x) for x in a.nodes.split(",") if x):
            rate = asyncio.run(in_process(nodes=n, pods=a.pods, shape=shape, timeout=a.timeout, profile=profile))
            profile = None
            row(f"{shape}, in process, {n} nodes, {a.pods} pods", rate,
                reference=K8S_BASIC if shape == "basic" else None, goal=GOAL if shape == "basic" else None)
    for n in (int(x) for x in a.e2e_nodes.split(",") if x):
        with hollow_cluster(nodes=n) as cluster:
            rate, create_rate = asyncio.run(end_to_end(cluster, pods=a.pods, timeout=a.timeout))
        row(f"basic, end to end, {n} hollow nodes, {a.pods} pods", rate, reference=K8S_BASIC, goal=None)
        print(f"{'  (pods created through the API at':44}{create_rate:9.0f}/s)", flush=True)


if __name__ == "__main__":
    main()
