"""The agent against a real control plane and real etcd, with FakeRuntime.

In-process `Agent` (so the test can end fake containers) talking to
`python -m controlplane.main` over loopback gRPC, exactly as a remote node.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config import AgentConfig
from agent.runtime.fake import FakeImages, FakeRuntime
from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, NotFound

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


async def eventually(check, *, what: str, timeout: float = 20.0):
    """Poll an async check until it returns a truthy value (the deadline only bounds a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        try:
            last = await check()
        except NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def make_pod(name: str, *, restart_policy: str = "Never") -> types_pb2.Pod:
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.spec.restart_policy = restart_policy
    c = pod.spec.containers.add(name="main", image="busybox")
    c.command.extend(["sh", "-c", "echo hi"])
    c.resources.requests["cpu"] = "100m"
    c.resources.requests["memory"] = "16Mi"
    return pod


def agent_config(controlplane: str, tmp_path: Path, node: str) -> AgentConfig:
    return AgentConfig(server=controlplane, node_name=node, node_ip="127.0.0.1", listen="127.0.0.1:0",
                       metrics_listen="", data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                       runtime="fake", heartbeat_seconds=1.0, resync_seconds=5.0, network=False)


def test_node_registers_ready_and_pod_runs_to_success(controlplane, tmp_path):
    async def scenario():
        runtime = FakeRuntime(state_root=tmp_path / "fake")
        agent = Agent(config=agent_config(controlplane, tmp_path, "node-it"), runtime=runtime, images=FakeImages())
        client = ApiClient(controlplane)
        try:
            await agent.start()
            node = await client.get("Node", "node-it", "")
            ready = {c.type: c for c in node.status.conditions}["Ready"]
            assert ready.status == "True"
            assert node.status.daemon_endpoints.kubelet_endpoint.port == agent.port
            assert {a.type: a.address for a in node.status.addresses}["InternalIP"] == "127.0.0.1"
            assert int(node.status.capacity["pods"]) == 110 and node.status.capacity["cpu"].isdigit()
            assert node.status.node_info.container_runtime_version == "skiff://0.1.0"
            first_beat = ready.last_heartbeat_time.ToDatetime()

            async def beat_renewed():
                n = await client.get("Node", "node-it", "")
                return {c.type: c for c in n.status.conditions}["Ready"].last_heartbeat_time.ToDatetime() > first_beat
            await eventually(beat_renewed, what="a newer heartbeat")

            await client.create(make_pod("hello"))

            async def phase(want):
                pod = await client.get("Pod", "hello")
                return pod if pod.status.phase == want else None
            pod = await eventually(lambda: phase("Running"), what="pod Running")
            assert pod.spec.node_name == "node-it" and pod.status.host_ip == "127.0.0.1"
            cs = pod.status.container_statuses[0]
            assert cs.state.running.started_at.seconds > 0

            # Logs and exec through the control plane's proxy to this agent's service.
            cid = cs.container_id.removeprefix("skiff://")
            runtime.containers[cid].config.log_path.write_bytes(b"hi\nthere\n")
            assert b"".join([c async for c in client.logs("hello")]) == b"hi\nthere\n"
            assert b"".join([c async for c in client.logs("hello", tail_lines=1)]) == b"there\n"
            out = [item async for item in client.exec("hello", ["echo", "x"])]
            assert out == [("stdout", b"echo x\n"), ("exit_code", 0)]

            async def reasons():
                events, _ = await client.list("Event", "default")
                found = [(e.reason, e.message, e.source.host) for e in events if e.involved_object.uid == pod.metadata.uid]
                return found if len(found) >= 3 else None
            found = await eventually(reasons, what="the agent's events")
            assert ("Started", "Started container main", "node-it") in found
            assert ("Pulled", 'Container image "busybox" already present on machine', "node-it") in found

            runtime.exit(cid, 0)
            pod = await eventually(lambda: phase("Succeeded"), what="pod Succeeded")
            term = pod.status.container_statuses[0].state.terminated
            assert term.exit_code == 0 and term.reason == "Completed"

            # Deleting: the agent frees the pod and confirms, the object goes away.
            await client.delete("Pod", "hello")

            async def gone():
                try:
                    await client.get("Pod", "hello")
                    return False
                except NotFound:
                    return True
            await eventually(gone, what="pod removed")
            assert runtime.containers == {} and runtime.sandboxes == {}
        finally:
            await agent.stop()
            await client.close()
    asyncio.run(scenario())


def test_restarted_agent_adopts_running_pod(controlplane, tmp_path):
    async def scenario():
        runtime = FakeRuntime(state_root=tmp_path / "fake")
        config = agent_config(controlplane, tmp_path, "node-re")
        client = ApiClient(controlplane)
        agent = Agent(config=config, runtime=runtime, images=FakeImages())
        try:
            await agent.start()
            await client.create(make_pod("steady", restart_policy="Always"))

            async def running():
                pod = await client.get("Pod", "steady")
                return pod if pod.status.phase == "Running" else None
            pod = await eventually(running, what="pod Running")
            cid = pod.status.container_statuses[0].container_id
            await agent.stop()

            agent = Agent(config=config, runtime=runtime, images=FakeImages())
            await agent.start()
            assert agent.workers.records[pod.metadata.uid].adopted
            await agent.workers.reconcile(pod.metadata.uid)  # one full pass over the adopted pod, now
            pod = await client.get("Pod", "steady")
            cs = pod.status.container_statuses[0]
            assert cs.container_id == cid and cs.restart_count == 0 and cs.state.HasField("running")
            assert [c for c in runtime.calls if c[0] == "start"] == [("start", cid.removeprefix("skiff://"))]
        finally:
            await agent.stop()
            await client.close()
    asyncio.run(scenario())
