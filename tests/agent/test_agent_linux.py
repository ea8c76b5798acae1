"""The agent process with the real runtime: containers outlive a SIGKILLed agent.

Real etcd, real control plane, `python -m agent.main` with LinuxRuntime on a
private data dir, run dir and cgroup parent (skiff-test-<random>), busybox
bootstrapped into the private image store. Pod networking is off (--no-network):
the network has its own tests.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, ApiError, NotFound
from tests.conftest import free_port
from tests.conftest import remove_cgroup_parent

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def pids_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def wait_for(check, *, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def pod(name: str, script: str, *, restart_policy: str, host_dir: Path | None = None) -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.spec.restart_policy = restart_policy
    p.spec.termination_grace_period_seconds = 2
    c = p.spec.containers.add(name="main", image="busybox:latest", image_pull_policy="Never")
    c.command.extend(["sh", "-c", script])
    if host_dir is not None:
        p.spec.volumes.add(name="signal").host_path.path = str(host_dir)
        c.volume_mounts.add(name="signal", mount_path="/signal")
    return p


def test_containers_outlive_a_killed_agent_and_exits_meanwhile_are_reported(controlplane, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    data, run = tmp_path / "data", tmp_path / "run"
    cgroup_parent = f"skiff-test-{secrets.token_hex(4)}"
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    subprocess.run([sys.executable, "-m", "skiff.cli.main", "image", "--data-dir", str(data), "bootstrap", "busybox"],
                   cwd=ROOT, env=ENV, check=True, capture_output=True)
    steady_marker = f"9{secrets.randbelow(10**8):08d}"
    ender_marker = f"skiff-test-ender-{secrets.token_hex(4)}"
    args = [sys.executable, "-m", "agent.main", "--server", controlplane, "--node-name", "node-linux",
            "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "", "--data-dir", str(data),
            "--run-dir", str(run), "--cgroup-parent", cgroup_parent, "--no-network"]
    log = tmp_path / "agent.log"
    procs: list[subprocess.Popen] = []

    def start_agent() -> subprocess.Popen:
        out = open(log, "ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        procs.append(proc)
        return proc

    async def get(client: ApiClient, name: str) -> types_pb2.Pod:
        return await client.get("Pod", name)

    async def until(client: ApiClient, name: str, check, what: str, timeout: float = 60.0) -> types_pb2.Pod:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                p = await get(client, name)
                if check(p):
                    return p
            except ApiError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")

    async def scenario(client: ApiClient) -> None:
        agent = start_agent()
        await client.create(pod("steady", f"exec sleep {steady_marker}", restart_policy="Always"))
        await client.create(pod("ender", f"while [ ! -e /signal/go ]; do sleep 0.1; done; exit 7 # {ender_marker}",
                                restart_policy="Never", host_dir=signal_dir))
        steady = await until(client, "steady", lambda p: p.status.phase == "Running", "steady Running")
        await until(client, "ender", lambda p: p.status.phase == "Running", "ender Running")
        [steady_pid] = wait_for(lambda: pids_with(steady_marker), what="the steady container's process")

        agent.send_signal(signal.SIGKILL)
        agent.wait()
        (signal_dir / "go").touch()
        wait_for(lambda: not pids_with(ender_marker), what="the ender container to exit")

        start_agent()
        ender = await until(client, "ender", lambda p: p.status.phase == "Failed", "ender Failed")
        term = ender.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason) == (7, "Error")
        again = await until(client, "steady", lambda p: p.status.phase == "Running", "steady still Running")
        cs = again.status.container_statuses[0]
        assert cs.restart_count == 0 and cs.container_id == steady.status.container_statuses[0].container_id
        assert pids_with(steady_marker) == [steady_pid]  # the very same process, never restarted

        for name in ("steady", "ender"):
            await client.delete("Pod", name)
        for name in ("steady", "ender"):
            await until_gone(client, name)
        assert not pids_with(steady_marker)

    async def until_gone(client: ApiClient, name: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await get(client, name)
            except NotFound:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"pod {name} never removed:\n{log.read_text()[-3000:]}")

    async def main() -> None:
        async with ApiClient(controlplane) as client:
            await scenario(client)

    try:
        asyncio.run(main())
        assert not list((run / "containers").iterdir())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # Whatever a failed run left: a fresh runtime process removes every container and sandbox.
        subprocess.run([sys.executable, "-c",
                        "import asyncio, sys; from pathlib import Path; "
                        "from agent.runtime.linux.runtime import LinuxRuntime; "
                        "rt = LinuxRuntime(run_dir=Path(sys.argv[1]), cgroup_parent=sys.argv[2]); "
                        "asyncio.run(rt.cleanup_orphans(set())); rt.close()", str(run), cgroup_parent],
                       cwd=ROOT, env=ENV, check=False, timeout=60)
        remove_cgroup_parent(cgroup_parent)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
