"""Eviction under node pressure: a node started with a memory threshold above
what it has is under MemoryPressure at once, and evicts its pods one at a
time in kubelet's order (BestEffort, whose usage exceeds its zero request,
before a pod within its requests), and the control plane taints it so the
scheduler sends nothing new. The agent in-process against a real
control plane (etcd), with the fake runtime."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agent.app import Agent
from agent.runtime.fake import FakeImages, FakeRuntime
from skiff.client import ApiClient
from tests.agent.test_agent_integration import agent_config, eventually, make_pod

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def test_memory_pressure_evicts_best_effort_first(controlplane, tmp_path):
    async def scenario():
        runtime = FakeRuntime(state_root=tmp_path / "fake")
        with open("/proc/meminfo") as f:
            total_kib = int(f.readline().split()[1])
        config = dataclasses.replace(agent_config(controlplane, tmp_path, "node-ev"),
                                     eviction_hard=f"memory.available<{total_kib * 2}Ki")
        agent = Agent(config=config, runtime=runtime, images=FakeImages())
        client = ApiClient(controlplane)
        try:
            await agent.start()
            node = await client.get("Node", "node-ev", "")
            conds = {c.type: c for c in node.status.conditions}
            assert (conds["MemoryPressure"].status, conds["MemoryPressure"].reason) == (
                "True", "KubeletHasInsufficientMemory")
            within = make_pod("within", restart_policy="Always")       # requests 16Mi; the fake uses 4Mi
            best = make_pod("best-effort", restart_policy="Always")
            best.spec.containers[0].ClearField("resources")
            # Bound directly, as pods running before the pressure began: the node is tainted
            # node.kubernetes.io/memory-pressure now, so the scheduler would send them nowhere.
            within.spec.node_name = best.spec.node_name = "node-ev"
            await client.create(within)
            await client.create(best)

            async def phase(name):
                return (await client.get("Pod", name)).status.phase
            first = []

            async def one_evicted():
                phases = {n: await phase(n) for n in ("within", "best-effort")}
                failed = [n for n, p in phases.items() if p == "Failed"]
                if failed and not first:
                    first.extend(failed)
                return len(failed) == 2
            await eventually(one_evicted, what="both pods evicted", timeout=60)
            assert first == ["best-effort"]
            node = await client.get("Node", "node-ev", "")
            assert [(t.key, t.effect) for t in node.spec.taints] == [("node.kubernetes.io/memory-pressure",
                                                                      "NoSchedule")]
            pod = await client.get("Pod", "best-effort")
            assert pod.status.reason == "Evicted"
            assert pod.status.message.startswith("The node was low on resource: memory. Threshold quantity: ")
            assert "Container main was using 4096Ki, request is 0, has larger consumption of memory." in \
                pod.status.message
            events, _ = await client.list("Event", "default")
            assert any(e.reason == "Evicted" and e.involved_object.name == "best-effort" for e in events)
        finally:
            await agent.stop()
            await client.close()
    asyncio.run(scenario())
