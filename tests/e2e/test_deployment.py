"""A Deployment on the real runtime, end to end as a user drives it: 4 busybox
replicas rolled to a new image while a watch samples every pod change (never
more than replicas + maxSurge pods, never fewer than replicas - maxUnavailable
Ready), `rollout undo` back to the first template, a killed process started
again in its pod, and a deleted pod replaced.
Real etcd, control plane, agent and containers in a private cluster."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Callable

import pytest

from skiff.api import meta
from skiff.client import ApiClient

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
"""


class Sampler:
    """Follows the app's pods through a watch (from a list, so no state is
    missed) and records (pods not being deleted, Ready pods) after each event."""

    def __init__(self, connect: Callable[[], ApiClient]) -> None:
        self.connect = connect   # a new client (PrivateCluster.client), in the sampler's own loop
        self.samples: list[tuple[int, int]] = []
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            await self._run()
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        async with self.connect() as c:
            listed, revision = await c.list("Pod", "default", label_selector="app=web")
            pods = {p.metadata.name: p for p in listed}
            self._record(pods)
            self._started.set()
            async for event_type, pod, _ in c.watch("Pod", "default", label_selector="app=web",
                                                    resource_version=revision):
                if event_type == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
                    pods.pop(pod.metadata.name, None)
                else:
                    pods[pod.metadata.name] = pod
                self._record(pods)

    def _record(self, pods) -> None:
        ready = sum(1 for p in pods.values()
                    if (cond := meta.get_condition(p.status.conditions, "Ready")) and cond.status == "True")
        self.samples.append((len(pods), ready))

    def __enter__(self) -> "Sampler":
        self._thread.start()
        assert self._started.wait(30), "the watch did not start"
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)


def _pods(c) -> list[dict]:
    items = json.loads(c.skiff("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _diagnose(c) -> str:
    return "\n".join(c.skiff(*args).stdout for args in (("get", "deploy,rs,pods", "-o", "wide"),
                                                        ("describe", "deployment", "web")))


def test_rolling_update_bounds_undo_and_replacement(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    tagged = c.skiff("image", "--data-dir", str(c.data_dir), "tag", "busybox", "busybox:v2")
    assert tagged.returncode == 0, tagged.stderr
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    applied = c.skiff("apply", "-f", str(tmp_path / "web.yaml"))
    assert (applied.returncode, applied.stdout) == (0, "deployment/web created\n"), applied.stderr
    status = c.skiff("rollout", "status", "deployment/web", "--timeout", "180s", timeout=200)
    assert status.returncode == 0, status.stderr + _diagnose(c)
    assert len(_pods(c)) == 4

    with Sampler(c.client) as sampler:
        changed = c.skiff("set", "image", "deployment/web", "main=busybox:v2")
        assert (changed.returncode, changed.stdout) == (0, "deployment/web image updated\n"), changed.stderr
        status = c.skiff("rollout", "status", "deployment/web", "--timeout", "300s", timeout=320)
        assert status.returncode == 0, status.stderr + _diagnose(c)
        assert status.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
    samples = sampler.samples
    assert len(samples) >= 12, samples  # 4 pods created, readied and deleted at least
    assert max(total for total, _ in samples) <= 5, samples      # replicas + maxSurge
    assert min(ready for _, ready in samples) >= 3, samples      # replicas - maxUnavailable
    pods = _pods(c)
    assert sorted(p["spec"]["containers"][0]["image"] for p in pods) == ["busybox:v2"] * 4

    undone = c.skiff("rollout", "undo", "deployment/web")
    assert (undone.returncode, undone.stdout) == (0, "deployment/web rolled back\n"), undone.stderr
    status = c.skiff("rollout", "status", "deployment/web", "--timeout", "300s", timeout=320)
    assert status.returncode == 0, status.stderr + _diagnose(c)
    image = c.skiff("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image.stdout == "busybox"
    history = c.skiff("rollout", "history", "deployment/web").stdout.splitlines()
    assert [line.split()[0] for line in history[2:] if line] == ["2", "3"]

    # The process killed: the container is started again in its pod (restartPolicy Always).
    target = _pods(c)[0]["metadata"]["name"]
    c.skiff("exec", target, "--", "kill", "1")
    deadline = time.monotonic() + 120
    while True:
        pod = json.loads(c.skiff("get", "pod", target, "-o", "json").stdout)
        statuses = pod["status"].get("containerStatuses", [])
        if statuses and statuses[0].get("restartCount", 0) >= 1 and statuses[0].get("ready"):
            break
        assert time.monotonic() < deadline, "the killed process was not started again\n" + _diagnose(c)
        time.sleep(0.5)
    status = c.skiff("rollout", "status", "deployment/web", "--timeout", "120s", timeout=140)
    assert status.returncode == 0, status.stderr

    # The pod deleted: the ReplicaSet makes another.
    victim = _pods(c)[0]["metadata"]["name"]
    deleted = c.skiff("delete", "pod", victim, "--timeout", "60s")
    assert deleted.returncode == 0, deleted.stderr
    status = c.skiff("rollout", "status", "deployment/web", "--timeout", "120s", timeout=140)
    assert status.returncode == 0, status.stderr

    def replaced() -> list[dict]:
        pods = _pods(c)
        ready = [p for p in pods if any(cond["type"] == "Ready" and cond["status"] == "True"
                                        for cond in p["status"].get("conditions", []))]
        return pods if len(ready) == 4 and victim not in {p["metadata"]["name"] for p in pods} else []

    deadline = time.monotonic() + 120
    while not (pods := replaced()):
        assert time.monotonic() < deadline, "the deleted pod was not replaced\n" + _diagnose(c)
        time.sleep(0.5)
    assert all(p["spec"]["containers"][0]["image"] == "busybox" for p in pods)
