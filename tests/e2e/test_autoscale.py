"""HorizontalPodAutoscaler end to end: a Deployment of busybox CPU burners (each
held at its 200m limit, twice its 100m request) is scaled up by the HPA from
the agents' real stats; once the load stops (each pod is told to stop through
`skiff exec`) it comes back down to minReplicas after the scale-down window
the manifest sets (15 s instead of Kubernetes' 300 s).
Real etcd, control plane, agent and containers in a private cluster."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: burn
        image: busybox
        command: [sh, -c, "trap 'exit 0' TERM; while [ ! -e /tmp/stop ]; do :; done; while true; do sleep 1; done"]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 200m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 15}
"""


def _until(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g}s"
        time.sleep(1)


def test_cpu_burners_scale_up_and_back_down_after_the_window(private_cluster, tmp_path):
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    (tmp_path / "burn.yaml").write_text(MANIFEST)
    applied = c.skiff("apply", "-f", str(tmp_path / "burn.yaml"))
    assert applied.returncode == 0, applied.stderr

    def replicas() -> int:
        out = c.skiff("get", "deploy", "burn", "-o", "json")
        return json.loads(out.stdout)["spec"]["replicas"] if out.returncode == 0 else -1

    def running_pods() -> list[str]:
        out = json.loads(c.skiff("get", "pods", "-l", "app=burn", "-o", "json").stdout)
        return [p["metadata"]["name"] for p in out["items"]
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]

    _until(lambda: replicas() == 3, timeout=150, what="scaled up to maxReplicas 3")
    table = c.skiff("get", "hpa")
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    cells = row.split()
    assert cells[:2] == ["burn", "Deployment/burn"] and cells[2] == "cpu:", row
    used, _, target = cells[3].partition("/")
    assert target == "50%" and used.endswith("%") and int(used[:-1]) > 50, row
    described = c.skiff("describe", "hpa", "burn").stdout
    assert "SuccessfulRescale" in described and "above target" in described, described

    # The load stops: every burner, including those the HPA added, is told to.
    pods = _until(lambda: (lambda p: p if len(p) == 3 else None)(running_pods()), timeout=120,
                  what="3 running burners")
    for pod in pods:
        stopped = c.skiff("exec", pod, "--", "touch", "/tmp/stop")
        assert stopped.returncode == 0, stopped.stderr
    _until(lambda: replicas() == 1, timeout=150, what="scaled back down to minReplicas 1")
    described = c.skiff("describe", "hpa", "burn").stdout
    assert "New size: 1; reason: All metrics below target" in described, described
