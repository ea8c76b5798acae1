"""Node pressure conditions (agent/pressure.py): kubelet's thresholds and
wording, measured from this machine, and written by the node's heartbeat."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent import pressure
from agent.pressure import Observation, Threshold, ThresholdError, conditions, observe, parse_thresholds

GiB = 1 << 30


def test_kubelets_default_thresholds_parse():
    t = parse_thresholds(pressure.DEFAULT_EVICTION_HARD)
    assert t == {"memory.available": Threshold("memory.available", quantity=100 * 1024 * 1024),
                 "nodefs.available": Threshold("nodefs.available", percent=10.0),
                 "nodefs.inodesFree": Threshold("nodefs.inodesFree", percent=5.0)}
    with pytest.raises(ThresholdError):
        parse_thresholds("memory.free<1Gi")


def _obs(**changes) -> Observation:
    base = dict(memory_available=4 * GiB, memory_capacity=8 * GiB, nodefs_available=50 * GiB,
                nodefs_capacity=100 * GiB, inodes_free=900, inodes_total=1000, pids_available=30000, pid_max=32768)
    return Observation(**{**base, **changes})


def test_conditions_as_kubelet_words_them():
    t = parse_thresholds(pressure.DEFAULT_EVICTION_HARD + ",pid.available<1000")
    calm = {c.type: (c.status, c.reason) for c in conditions(_obs(), t)}
    assert calm == {"MemoryPressure": (False, "KubeletHasSufficientMemory"),
                    "DiskPressure": (False, "KubeletHasNoDiskPressure"),
                    "PIDPressure": (False, "KubeletHasSufficientPID")}
    tight = conditions(_obs(memory_available=50 << 20, nodefs_available=5 * GiB, pids_available=10), t)
    assert [(c.type, c.status, c.message) for c in tight] == [
        ("MemoryPressure", True, "kubelet has insufficient memory available"),
        ("DiskPressure", True, "kubelet has disk pressure"),
        ("PIDPressure", True, "kubelet has insufficient PID available")]
    assert conditions(_obs(inodes_free=10), t)[1].status is True   # inodes count too


def test_a_high_threshold_puts_this_machine_under_memory_pressure(tmp_path):
    obs = observe(tmp_path)
    assert 0 < obs.memory_available <= obs.memory_capacity and obs.nodefs_capacity > 0 and obs.pid_max > 0
    high = parse_thresholds(f"memory.available<{obs.memory_capacity}")   # more than there can be
    assert conditions(obs, high)[0].status is True
    assert conditions(obs, parse_thresholds("memory.available<1Ki"))[0].status is False


def test_the_heartbeat_writes_the_conditions():
    from agent.node import NodeAgent, NodeIdentity
    from controlplane.testing import FakeApiClient

    async def scenario():
        client = FakeApiClient()
        state = {"pressure": False}
        agent = NodeAgent(client=client, identity=NodeIdentity(name="n1", internal_ip="10.0.0.1", agent_port=1),
                          pressure=lambda: conditions(_obs(memory_available=(50 << 20) if state["pressure"]
                                                           else 4 * GiB), parse_thresholds("memory.available<1Gi")))
        await agent.register()
        node = await client.get("Node", "n1", "")
        assert {c.type: c.status for c in node.status.conditions}["MemoryPressure"] == "False"
        state["pressure"] = True
        node = await agent.heartbeat_once()
        conds = {c.type: c for c in node.status.conditions}
        assert (conds["MemoryPressure"].status, conds["MemoryPressure"].reason) == ("True",
                                                                                     "KubeletHasInsufficientMemory")
        assert conds["Ready"].status == "True" and conds["DiskPressure"].status == "False"
    asyncio.run(scenario())
