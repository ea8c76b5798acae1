"""Pods pull their images from a real registry, on a real node.

Debian's docker-registry on a free 127.0.0.1 port (started as
tests/agent/images/test_image_registry.py does), busybox bootstrapped into a
private store and pushed to it; real etcd and control plane; `python -m
agent.main` with the LinuxRuntime on a private data dir (its image store starts
empty), run dir and cgroup parent, without pod networking. A pod of
`127.0.0.1:PORT/busybox:1` with IfNotPresent is pulled into the agent's store
and runs; a pod of a tag the registry lacks shows ErrImagePull, then
ImagePullBackOff, in its status through the API, and stays Pending.
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

from agent.images.bootstrap import bootstrap_busybox
from agent.images.registry import push
from agent.images.store import ImageStore
from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, ApiError, NotFound
from tests.agent.images.test_image_registry import REGISTRY, Registry
from tests.conftest import free_port
from tests.conftest import remove_cgroup_parent

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.slow,
              pytest.mark.skipif(REGISTRY is None, reason="apt-get install docker-registry")]
ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def make_pod(name: str, image: str, *, policy: str = "IfNotPresent") -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.spec.restart_policy = "Never"
    p.spec.termination_grace_period_seconds = 2
    c = p.spec.containers.add(name="main", image=image, image_pull_policy=policy)
    c.command.extend(["sh", "-c", "echo pulled-and-ran"])
    return p


def test_pod_pulls_its_image_and_a_missing_tag_backs_off(controlplane, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry", None)
    data, run = tmp_path / "data", tmp_path / "run"
    cgroup_parent = f"skiff-test-{secrets.token_hex(4)}"
    log = tmp_path / "agent.log"
    agent: subprocess.Popen | None = None
    try:
        source = ImageStore(root=tmp_path / "source")
        bootstrap_busybox(store=source)
        image = f"{registry.address}/busybox:1"
        source.tag("busybox", image)
        push(store=source, ref=image)
        missing = f"{registry.address}/busybox:nosuch"
        assert ImageStore(root=data / "images").resolve(image) is None

        with open(log, "wb") as out:
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent.main", "--server", controlplane, "--node-name", "node-pull",
                 "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "", "--data-dir", str(data),
                 "--run-dir", str(run), "--cgroup-parent", cgroup_parent, "--no-network"],
                cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)

        def agent_log() -> str:
            return log.read_text(errors="replace")[-4000:]

        async def until(client: ApiClient, name: str, check, what: str, timeout: float = 90.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    p = await client.get("Pod", name)
                    if check(p):
                        return p
                except ApiError:
                    pass
                await asyncio.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}:\n{agent_log()}")

        async def reasons_of(client: ApiClient, name: str, *, until_reason: str) -> list[str]:
            """Every waiting reason the pod's container shows, in order, through a watch."""
            seen: list[str] = []
            async for _type, obj, _rv in client.watch("Pod", namespace="default"):
                if obj is None or obj.metadata.name != name or not obj.status.container_statuses:
                    continue
                assert obj.status.phase == "Pending"
                reason = obj.status.container_statuses[0].state.waiting.reason
                if reason and (not seen or seen[-1] != reason):
                    seen.append(reason)
                if reason == until_reason and "ErrImagePull" in seen:
                    return seen
            return seen

        async def scenario(client: ApiClient) -> None:
            created = await client.create(make_pod("pulled", image))
            done = await until(client, "pulled", lambda p: p.status.phase in ("Succeeded", "Failed"),
                               "the pulled pod to finish")
            term = done.status.container_statuses[0].state.terminated
            assert (done.status.phase, term.exit_code) == ("Succeeded", 0), agent_log()
            logs = b"".join([chunk async for chunk in client.logs("pulled")])
            assert b"pulled-and-ran" in logs
            pulled = ImageStore(root=data / "images").resolve(image)
            assert pulled is not None and pulled.id == source.resolve("busybox").id
            events, _ = await client.list("Event", namespace="default")
            mine = {e.reason: e.message for e in events if e.involved_object.uid == created.metadata.uid}
            assert mine.get("Pulling") == f'Pulling image "{image}"'
            assert mine.get("Pulled", "").startswith(f'Successfully pulled image "{image}" in ')
            assert f"pulled {image} in " in agent_log() and "1 layer(s) downloaded" in agent_log()

            # Always pulls again; the registry's digest is the local one: no layer is downloaded.
            await client.create(make_pod("again", image, policy="Always"))
            done = await until(client, "again", lambda p: p.status.phase in ("Succeeded", "Failed"),
                               "the Always pod to finish")
            assert done.status.phase == "Succeeded", agent_log()
            assert "0 layer(s) downloaded (0 bytes), 1 already present" in agent_log()

            await client.create(make_pod("missing", missing))
            seen = await asyncio.wait_for(reasons_of(client, "missing", until_reason="ImagePullBackOff"), 90)
            assert seen[-2:] == ["ErrImagePull", "ImagePullBackOff"], seen
            p = await client.get("Pod", "missing")
            waiting = p.status.container_statuses[0].state.waiting
            assert waiting.message.startswith(f'Back-off pulling image "{missing}"')
            assert "not found" in waiting.message
            assert p.status.phase == "Pending" and agent.poll() is None

            for name in ("pulled", "again", "missing"):
                await client.delete("Pod", name)
            for name in ("pulled", "again", "missing"):
                deadline = time.monotonic() + 60
                while True:
                    try:
                        await client.get("Pod", name)
                    except NotFound:
                        break
                    assert time.monotonic() < deadline, f"pod {name} never removed:\n{agent_log()}"
                    await asyncio.sleep(0.1)

        async def main() -> None:
            async with ApiClient(controlplane) as client:
                await scenario(client)

        asyncio.run(main())
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        if agent is not None:
            subprocess.run([sys.executable, "-c",
                            "import asyncio, sys; from pathlib import Path; "
                            "from agent.runtime.linux.runtime import LinuxRuntime; "
                            "rt = LinuxRuntime(run_dir=Path(sys.argv[1]), cgroup_parent=sys.argv[2]); "
                            "asyncio.run(rt.cleanup_orphans(set())); rt.close()", str(run), cgroup_parent],
                           cwd=ROOT, env=ENV, check=False, timeout=60)
            remove_cgroup_parent(cgroup_parent)
        registry.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
