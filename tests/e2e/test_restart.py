"""Containers outlive the agent, as a user sees it: `skiff down` without
--purge stops the cluster but not the pods; `skiff up` again finds the pod
Running with the same process (no restart, restartCount 0); `down --purge`
then leaves no process of the pod and no zygote behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import alive

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

POD = """apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo started; exec sleep 3600']
"""


def pod_processes(uid: str) -> set[int]:
    """Host pids of the processes in the pod's cgroups."""
    out = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if uid in (proc / "cgroup").read_text():
                    out.add(int(proc.name))
            except OSError:
                continue
    return out


def test_pods_run_on_across_down_and_up(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up_args = c.up_args("--detach")[3:]   # up_args starts with python -m skiff.cli.main
    assert c.skiff(*up_args, timeout=180).returncode == 0
    manifest = c.base / "sleeper.yaml"
    manifest.write_text(POD)
    assert c.skiff("apply", "-f", str(manifest)).returncode == 0
    waited = c.skiff("wait", "pod", "sleeper", "--for=jsonpath={.status.phase}=Running", "--timeout", "120s")
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", "sleeper").stdout
    uid = json.loads(c.skiff("get", "pod", "sleeper", "-o", "json").stdout)["metadata"]["uid"]
    before = pod_processes(uid)
    zygote = int((c.run_dir / "zygote.pid").read_text())
    assert before and alive(zygote)

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir))
    assert down.returncode == 0, down.stderr
    assert pod_processes(uid) == before and alive(zygote)   # the cluster is down, the pod is not

    again = c.skiff(*up_args, timeout=180)
    assert again.returncode == 0, again.stderr
    assert c.skiff("wait", "pod", "sleeper", "--for=jsonpath={.status.phase}=Running",
                   "--timeout", "60s").returncode == 0
    pod = json.loads(c.skiff("get", "pod", "sleeper", "-o", "json").stdout)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert pod_processes(uid) == before
    assert c.skiff("logs", "sleeper").stdout == "started\n"

    purge = c.skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), "--purge")
    assert purge.returncode == 0, purge.stderr
    assert not any(alive(p) for p in before)
    assert not alive(zygote), "the zygote outlived the purge"
