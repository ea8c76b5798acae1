"""A node's pod capacity, `--max-pods` (kubelet's, default 110): the agent's and the hollow
nodes' flag, the Node's capacity and allocatable pods, and the scheduler honouring it."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, config_from_args
from agent.hollow import HollowCluster, HollowConfig, validate
from agent.hollow import config_from_args as hollow_args
from agent.node import NodeIdentity, machine_status
from controlplane.testing import eventually
from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]


def test_capacity_and_allocatable_pods_are_the_nodes_max_pods():
    assert machine_status(NodeIdentity("n1", "10.1.2.3", 1)).capacity["pods"] == "110"   # kubelet's default
    status = machine_status(NodeIdentity("n1", "10.1.2.3", 1, max_pods=500))
    assert status.capacity["pods"] == status.allocatable["pods"] == "500"


def test_agent_flag():
    assert config_from_args(["--node-name", "n1"]).max_pods == 110
    assert config_from_args(["--node-name", "n1", "--max-pods", "250"]).max_pods == 250
    with pytest.raises(ConfigError, match="^--max-pods: must be at least 1, got 0$"):
        config_from_args(["--node-name", "n1", "--max-pods", "0"])


def test_agent_refuses_a_bad_max_pods_with_exit_2_naming_the_flag():
    proc = subprocess.run([sys.executable, "-m", "agent.main", "--node-name", "n1", "--max-pods", "-5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--max-pods: must be at least 1, got -5" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_hollow_flag():
    config, _, _ = hollow_args(["--server", "127.0.0.1:9", "--nodes", "2", "--max-pods", "30"])
    assert config.max_pods == 30
    assert hollow_args(["--server", "127.0.0.1:9", "--nodes", "2"])[0].max_pods == 110
    with pytest.raises(ValueError, match="^--max-pods: must be at least 1, got 0$"):
        validate(HollowConfig(server="127.0.0.1:1", nodes=1, max_pods=0))


def _pod(name: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels["app"] = "capacity"
    p.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    return p


@pytest.mark.etcd
@pytest.mark.slow
def test_a_node_runs_at_most_max_pods_and_the_next_pod_says_why_it_waits(controlplane, tmp_path):
    async def scenario():
        hollow = HollowCluster(HollowConfig(server=controlplane, nodes=1, prefix="cap", max_pods=3),
                               scratch=tmp_path / "hollow")
        async with ApiClient(controlplane) as c:
            await hollow.start()
            try:
                node = await c.get("Node", "cap-0", "")
                assert node.status.capacity["pods"] == node.status.allocatable["pods"] == "3"
                for i in range(4):
                    await c.create(_pod(f"p{i}"))

                async def three_running_one_waiting():
                    pods, _ = await c.list("Pod", "default", label_selector="app=capacity")
                    running = [p for p in pods if p.status.phase == "Running"]
                    waiting = [p for p in pods if not p.spec.node_name]
                    cond = [c for p in waiting for c in p.status.conditions if c.type == "PodScheduled"]
                    return len(running) == 3 and len(waiting) == 1 and cond and \
                        cond[0].reason == "Unschedulable" and "Too many pods" in cond[0].message
                await eventually(three_running_one_waiting, timeout=120, interval=0.5,
                                 what="3 pods Running, the 4th Pending for Too many pods")
                assert hollow.pods_running() == 3
                for i in range(4):
                    await c.delete("Pod", f"p{i}", "default", grace_period_seconds=0)

                async def none_left():
                    pods, _ = await c.list("Pod", "default", label_selector="app=capacity")
                    return not pods and hollow.pods_running() == 0
                await eventually(none_left, timeout=120, interval=0.5, what="every pod gone")
            finally:
                await hollow.stop()
                await hollow.delete_nodes()
    asyncio.run(scenario())
