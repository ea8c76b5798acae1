"""Node failure with hollow nodes (`--runtime fake` agents) on a real control
plane with Skiff's defaults: stopping one node's agent moves its Deployment
pods to the other nodes; when the agent comes back its stale pods are killed
and removed, and the Deployment never has more than replicas + surge pods
(sampled with a watch)."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.testing import eventually
from proto.skiff.v1 import apps_pb2
from skiff.api import meta
from skiff.client import ApiClient
from tests.controlplane.controllers.test_hollow_nodes import hollow_nodes

pytestmark = [pytest.mark.etcd, pytest.mark.slow]
REPLICAS, SURGE = 3, 1   # the default maxSurge 25% of 3, rounded up


def deployment() -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    d.spec.replicas = REPLICAS
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    return d


def live(pod) -> bool:
    """A pod the Deployment counts: not being deleted, not finished."""
    return not pod.metadata.HasField("deletion_timestamp") and pod.status.phase not in ("Succeeded", "Failed")


async def sample_max_pods(c: ApiClient, seen: list[int]) -> None:
    """Append the number of live app=web pods after every watch event."""
    pods: dict[str, object] = {}
    async for type_, pod, _ in c.watch("Pod", "default", label_selector="app=web"):
        if pod is None:
            continue
        if type_ == "DELETED" or not live(pod):
            pods.pop(pod.metadata.name, None)
        else:
            pods[pod.metadata.name] = pod
        seen.append(len(pods))


def test_stopped_node_pods_move_elsewhere_and_come_back_without_excess(controlplane, tmp_path):
    async def body(start, stop):
        async with ApiClient(controlplane) as c:
            async def ready_nodes():
                nodes, _ = await c.list("Node")
                return sorted(n.metadata.name for n in nodes
                              if (cond := meta.get_condition(n.status.conditions, "Ready")) and cond.status == "True")

            async def pods():
                listed, _ = await c.list("Pod", "default", label_selector="app=web")
                return listed

            async def running_nodes():
                return sorted(p.spec.node_name for p in await pods() if live(p) and p.status.phase == "Running")

            names = ["hollow-1", "hollow-2", "hollow-3"]
            for name in names:
                start(name)
            await eventually(lambda: _eq(ready_nodes(), names), timeout=60, what="3 nodes Ready")
            seen: list[int] = []
            sampler = asyncio.create_task(sample_max_pods(c, seen))
            await c.create(deployment())
            await eventually(lambda: _len(running_nodes(), REPLICAS), timeout=60, what="3 pods Running")
            victim = max(names, key=(await running_nodes()).count)
            stop(victim)
            await eventually(lambda: _eq(ready_nodes(), sorted(set(names) - {victim})), timeout=60,
                             what=f"{victim} not Ready")

            async def moved():
                nodes = await running_nodes()
                return len(nodes) == REPLICAS and victim not in nodes
            await eventually(moved, timeout=60, what=f"{REPLICAS} pods Running away from {victim}")
            start(victim)

            async def stale_gone():
                return not [p for p in await pods() if p.spec.node_name == victim] and \
                    victim in await ready_nodes()
            await eventually(stale_gone, timeout=60, what=f"{victim} back and its stale pods removed")
            assert len(await running_nodes()) == REPLICAS
            await asyncio.sleep(1)   # let the watch deliver what is left
            sampler.cancel()
            assert seen and max(seen) <= REPLICAS + SURGE, f"live pods went up to {max(seen)}"
    with hollow_nodes(controlplane, tmp_path) as (start, stop):
        asyncio.run(body(start, stop))


async def _eq(coro, expected):
    return await coro == expected


async def _len(coro, expected):
    return len(await coro) == expected
