"""Workloads across several agents with `--runtime fake` (hollow nodes) on one
control plane over etcd: a DaemonSet follows nodes joining and leaving."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.testing import eventually
from proto.skiff.v1 import apps_pb2
from skiff.api import meta
from skiff.client import ApiClient
from tests.conftest import free_port

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))


@contextlib.contextmanager
def hollow_nodes(server: str, base: Path):
    """start(name) runs `python -m agent.main --runtime fake` for a node; all stopped (by PID) at the end."""
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        log = open(base / f"{name}.log", "wb")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "agent.main", "--server", server, "--node-name", name,
             "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}",
             "--data-dir", str(base / name / "data"), "--run-dir", str(base / name / "run"), "--runtime", "fake"],
            cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)

    def stop(name: str) -> None:
        proc = procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    try:
        yield start, stop
    finally:
        for name in list(procs):
            stop(name)


def _ds() -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name = "agent"
    ds.spec.selector.match_labels["app"] = "agent"
    ds.spec.template.metadata.labels["app"] = "agent"
    ds.spec.template.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    return ds


def test_daemonset_follows_hollow_nodes_joining_and_leaving(controlplane, tmp_path):
    async def body(start, stop):
        async with ApiClient(controlplane) as c:
            async def ready_nodes():
                nodes, _ = await c.list("Node")
                return sorted(n.metadata.name for n in nodes
                              if (cond := meta.get_condition(n.status.conditions, "Ready")) and cond.status == "True")

            async def running_on():
                pods, _ = await c.list("Pod", "default", label_selector="app=agent")
                return sorted(p.spec.node_name for p in pods if p.status.phase == "Running"
                              and not p.metadata.HasField("deletion_timestamp"))

            start("hollow-1")
            start("hollow-2")
            await eventually(lambda: _eq(ready_nodes(), ["hollow-1", "hollow-2"]), timeout=60, what="2 nodes Ready")
            await c.create(_ds())
            await eventually(lambda: _eq(running_on(), ["hollow-1", "hollow-2"]), timeout=60,
                             what="a running pod on each node")
            start("hollow-3")
            await eventually(lambda: _eq(running_on(), ["hollow-1", "hollow-2", "hollow-3"]), timeout=60,
                             what="a pod for the node that joined")
            stop("hollow-2")
            await c.delete("Node", "hollow-2", namespace="")
            await eventually(lambda: _eq(running_on(), ["hollow-1", "hollow-3"]), timeout=60,
                             what="the pod of the node that left gone")

            async def status():
                s = (await c.get("DaemonSet", "agent")).status
                return (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready) == (2, 2, 2)
            await eventually(status, timeout=60, what="status 2/2/2")
    with hollow_nodes(controlplane, tmp_path) as (start, stop):
        asyncio.run(body(start, stop))


async def _eq(coro, expected):
    return await coro == expected
