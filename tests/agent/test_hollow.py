"""Hollow nodes (agent/hollow.py): N node agents in one process over one client.

Unit tests of the parts, then the CI-sized scale test against a real control
plane and etcd: 100 hollow nodes run a 300-pod Deployment, it scales to 0,
and nothing is left (no pods, no runtime state, no scratch directory).
"""
from __future__ import annotations

import asyncio
import os

import pytest

from agent.hollow import HollowCluster, HollowConfig, HollowRuntime, config_from_args, main, validate
from agent.runtime.interface import ContainerConfig, SandboxConfig
from controlplane.testing import eventually
from proto.skiff.v1 import apps_pb2
from skiff.api import kinds, meta
from skiff.cli._objects import change
from skiff.client import ApiClient, ApiError


@pytest.mark.parametrize("changes, message", [
    (dict(nodes=0), "--nodes: must be at least 1, got 0"),
    (dict(prefix="Hollow"), "--prefix: 'Hollow' is not a valid start of a node name"),
    (dict(prefix="-x"), "--prefix: '-x' is not a valid start"),
    (dict(heartbeat_seconds=0), "--heartbeat-seconds: must be positive, got 0"),
    (dict(start_latency=-1), "--start-latency: must not be negative, got -1"),
])
def test_bad_config_is_refused_naming_the_flag(changes, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        validate(HollowConfig(**{"server": "127.0.0.1:1", "nodes": 1, **changes}))


def test_command_line_refuses_bad_flags_with_exit_2(capsys):
    assert main(["--server", "127.0.0.1:1", "--nodes", "-3"]) == 2
    assert "skiff-hollow: --nodes: must be at least 1, got -3" in capsys.readouterr().err


def test_command_line_defaults():
    config, scratch, level = config_from_args(["--server", "127.0.0.1:9", "--nodes", "5"])
    assert (config.nodes, config.prefix, config.heartbeat_seconds, scratch, level) == (5, "hollow-node", 2.0,
                                                                                       None, "info")
    assert [config.node_name(i) for i in range(2)] == ["hollow-node-0", "hollow-node-1"]


def test_runtime_takes_its_latencies_and_keeps_no_call_log():
    async def scenario():
        runtime = HollowRuntime(sandbox_latency=0.05, start_latency=0.05)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await runtime.create_sandbox(SandboxConfig(pod_id="p1", namespace="default", name="p", hostname="p"))
        await runtime.start(ContainerConfig(id="c1", pod_id="p1", name="c", image="busybox", image_id="sha256:x",
                                            lower_dirs=(), args=("sleep",)))
        took = loop.time() - began
        assert [c.id for c in runtime.running()] == ["c1"]
        assert list(runtime.calls) == []
        return took
    assert asyncio.run(scenario()) >= 0.1


def _deployment(replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "scale"
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "scale"
    d.spec.template.metadata.labels["app"] = "scale"
    c = d.spec.template.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    # Requests, so the scheduler's LeastAllocated spreads them (without any, every node scores the same).
    c.resources.requests["cpu"] = "50m"
    c.resources.requests["memory"] = "32Mi"
    return d


@pytest.mark.etcd
@pytest.mark.slow
def test_100_hollow_nodes_run_a_deployment_and_scale_it_to_zero(controlplane_factory, tmp_path):
    nodes, replicas = 100, 300
    # Kubernetes' node timings (heartbeat 10 s, grace 40 s), as the benchmarks use: on a busy CI
    # machine 100 nodes' 2 s heartbeats can arrive past Skiff's 8 s grace and taint nodes mid-test.
    controlplane = controlplane_factory("--node-monitor-grace-period", "40").address

    async def scenario():
        hollow = HollowCluster(HollowConfig(server=controlplane, nodes=nodes, heartbeat_seconds=10.0),
                               scratch=tmp_path / "hollow")
        async with ApiClient(controlplane) as c:
            await hollow.start()
            try:
                listed, _ = await c.list("Node")
                ready = [n.metadata.name for n in listed
                         if (cond := meta.get_condition(n.status.conditions, "Ready")) and cond.status == "True"]
                assert sorted(ready) == sorted(hollow.node_names)
                assert {a.address for n in listed for a in n.status.addresses if a.type == "InternalIP"} \
                    == {"127.0.0.1"}
                scratch = hollow.scratch
                assert scratch is not None and scratch.is_dir()

                await c.create(_deployment(replicas))

                async def running():
                    pods, _ = await c.list("Pod", "default", label_selector="app=scale")
                    return sum(1 for p in pods if p.status.phase == "Running"
                               and meta.get_condition(p.status.conditions, "Ready").status == "True")
                await eventually(lambda: _at_least(running(), replicas), timeout=600, interval=1,
                                 what=f"{replicas} pods Running and Ready")
                pods, _ = await c.list("Pod", "default", label_selector="app=scale")
                used = {p.spec.node_name for p in pods}
                assert used <= set(hollow.node_names) and len(used) > nodes // 2   # spread, not piled up
                assert hollow.pods_running() == replicas

                def to_zero(d):
                    d.spec.replicas = 0
                    return d
                # As `skiff scale` does: the controller writes the status meanwhile, so a plain
                # read-modify-write can meet a Conflict; read again and retry.
                await change(c, kinds.kind_named("Deployment"), "default", "scale", to_zero)

                async def none_left():
                    left, _ = await c.list("Pod", "default", label_selector="app=scale")
                    return not left and hollow.pods_running() == 0
                await eventually(none_left, timeout=600, interval=1, what="every pod gone")
                assert not any(n.runtime.sandboxes or n.runtime.containers for n in hollow.nodes)
                assert not any(os.listdir(scratch / name) for name in os.listdir(scratch))
            finally:
                await hollow.stop()
        assert not scratch.exists()
        assert not (tmp_path / "hollow").exists() or not os.listdir(tmp_path / "hollow")

    asyncio.run(scenario())


async def _at_least(coro, n: int) -> bool:
    return await coro >= n


def test_cert_dir_without_a_node_s_certificate_is_refused(tmp_path):
    (tmp_path / "ca.crt").write_text("")
    for ext in ("crt", "key"):
        (tmp_path / f"node-hollow-node-0.{ext}").write_text("")
    with pytest.raises(ValueError, match=rf"^--cert-dir {tmp_path}: no node-hollow-node-1.crt \(and 1 more\)$"):
        validate(HollowConfig(server="127.0.0.1:1", nodes=2, cert_dir=str(tmp_path)))


@pytest.mark.etcd
@pytest.mark.slow
def test_hollow_nodes_on_a_secure_api_are_each_their_own_node(controlplane_factory, tmp_path):
    """Each hollow node with its own certificate (system:node:NAME): registered, running its
    pods, and judged by the node authorizer as itself - its own Node only (decision 34)."""
    info = controlplane_factory(secure=True)
    names = [f"hollow-node-{i}" for i in range(3)]
    ca = info.pki.ensure_ca()
    for name in names:
        info.pki.ensure_node(ca, name, address="127.0.0.1")

    async def scenario():
        hollow = HollowCluster(HollowConfig(server=info.address, nodes=3, cert_dir=str(info.pki.directory)),
                               scratch=tmp_path / "hollow")
        async with info.client() as c:
            await hollow.start()
            try:
                listed, _ = await c.list("Node")
                assert sorted(n.metadata.name for n in listed) == names
                await c.create(_deployment(6))

                async def running():
                    pods, _ = await c.list("Pod", "default", label_selector="app=scale")
                    return sum(1 for p in pods if p.status.phase == "Running")
                await eventually(lambda: _at_least(running(), 6), timeout=300, interval=0.5,
                                 what="6 pods Running")
                assert hollow.pods_running() == 6
                # Their kube-api-access volumes are plain directories on hollow nodes: 3000 pods
                # are not 3000 tmpfs mounts (nor mounts left behind by a killed hollow process).
                pods, _ = await c.list("Pod", "default", label_selector="app=scale")
                assert all(any(v.HasField("projected") for v in p.spec.volumes) for p in pods)
                with open("/proc/self/mountinfo") as mountinfo:
                    assert [line for line in mountinfo if str(tmp_path) in line] == []
                # Node 0's client is node 0: another node's Node is not its to write.
                first = hollow.nodes[0]
                other = await first.client.get("Node", "hollow-node-1", "")
                other.metadata.labels["touched"] = "yes"
                with pytest.raises(ApiError, match='User "system:node:hollow-node-0" cannot update resource '
                                                   '"nodes"'):
                    await first.client.update(other)
            finally:
                await hollow.stop()

    asyncio.run(scenario())
