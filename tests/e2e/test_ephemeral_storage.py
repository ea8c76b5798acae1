"""Ephemeral-storage limits on the real runtime (issue 10), as kubelet enforces
them by eviction: a container writing past `resources.limits.ephemeral-storage`
in its writable layer, and a pod filling an emptyDir past its `sizeLimit`, are
Failed with reason Evicted and kubelet's message naming the limit; a pod
within its limits runs on."""
from __future__ import annotations

import json
import os
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

PODS = """\
apiVersion: v1
kind: Pod
metadata:
  name: layer-hog
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "dd if=/dev/zero of=/big bs=1024 count=4096 && sleep 3600"]
    resources:
      limits:
        ephemeral-storage: 1Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: scratch-hog
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "dd if=/dev/zero of=/scratch/big bs=1024 count=4096 && sleep 3600"]
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  volumes:
  - name: scratch
    emptyDir:
      sizeLimit: 2Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: modest
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "dd if=/dev/zero of=/small bs=1024 count=64 && sleep 3600"]
    resources:
      limits:
        ephemeral-storage: 8Mi
"""


def test_pods_over_their_ephemeral_storage_limits_are_evicted(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    (tmp_path / "pods.yaml").write_text(PODS)
    applied = c.skiff("apply", "-f", str(tmp_path / "pods.yaml"))
    assert applied.returncode == 0, applied.stderr

    def pod(name: str) -> dict:
        return json.loads(c.skiff("get", "pod", name, "-o", "json").stdout)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phases = {n: pod(n)["status"].get("phase") for n in ("layer-hog", "scratch-hog")}
        if set(phases.values()) == {"Failed"}:
            break
        time.sleep(1)
    layer, scratch = pod("layer-hog"), pod("scratch-hog")
    assert (layer["status"].get("phase"), layer["status"].get("reason")) == ("Failed", "Evicted"), \
        c.skiff("describe", "pod", "layer-hog").stdout
    assert layer["status"]["message"] == "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. "
    assert (scratch["status"].get("phase"), scratch["status"].get("reason")) == ("Failed", "Evicted"), \
        c.skiff("describe", "pod", "scratch-hog").stdout
    assert scratch["status"]["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "2Mi". '
    assert pod("modest")["status"]["phase"] == "Running"
    described = c.skiff("describe", "pod", "layer-hog").stdout
    assert "Evicted" in described and "1Mi" in described
