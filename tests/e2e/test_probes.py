"""Probes on a real node, as a user sees them through `skiff`: an httpGet
readiness probe against busybox httpd flips the pod's Ready both ways, a
tcpSocket liveness probe restarts a container whose port closed, and the
Kubernetes docs' exec liveness manifest (applied unchanged, a local busybox
standing in for its image) restarts its container with kubelet's events.
Real etcd, control plane, agent and runtime (root), in a private cluster."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes-docs"

READY = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: httpd
    image: busybox
    command: [sh, -c, "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
    ports:
    - {name: http, containerPort: 8080}
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 1
"""

LIVE = """\
apiVersion: v1
kind: Pod
metadata:
  name: tcp
spec:
  containers:
  - name: server
    image: busybox
    command: [sh, -c, "httpd -p 9000 -h /; echo serving; exec sleep 3600"]
    livenessProbe:
      tcpSocket: {port: 9000}
      periodSeconds: 1
      failureThreshold: 2
"""


def test_probes_on_a_real_node(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    data = ["--data-dir", str(c.data_dir)]
    tagged = c.skiff("image", "tag", *data, "busybox", "registry.k8s.io/busybox:1.27.2")
    assert tagged.returncode == 0, tagged.stderr

    (tmp_path / "ready.yaml").write_text(READY)
    (tmp_path / "live.yaml").write_text(LIVE)
    for manifest in (tmp_path / "ready.yaml", tmp_path / "live.yaml", DOCS / "pods/probe/exec-liveness.yaml"):
        applied = c.skiff("apply", "-f", str(manifest))
        assert applied.returncode == 0 and applied.stderr == "", applied.stderr

    def wait(*args: str) -> None:
        result = c.skiff("wait", *args, "--timeout", "100s")
        assert result.returncode == 0, result.stderr + c.skiff("describe", "pod", args[1]).stdout

    def describe(name: str) -> str:
        return c.skiff("describe", "pod", name).stdout

    # httpGet readiness: Ready, then not (the file is gone), then Ready again; never restarted.
    wait("pod", "web", "--for=condition=Ready")
    assert c.skiff("exec", "web", "--", "rm", "/www/healthz").returncode == 0
    wait("pod", "web", "--for=condition=Ready=False")
    row = c.skiff("get", "pod", "web").stdout.splitlines()[1].split()
    assert row[1:4] == ["0/1", "Running", "0"]
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in describe("web")
    assert c.skiff("exec", "web", "--", "sh", "-c", "echo ok > /www/healthz").returncode == 0
    wait("pod", "web", "--for=condition=Ready")
    pod = json.loads(c.skiff("get", "pod", "web", "-o", "json").stdout)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # tcpSocket liveness: the port closes, the container is killed and started again.
    wait("pod", "tcp", "--for=condition=Ready")
    assert c.skiff("exec", "tcp", "--", "killall", "httpd").returncode == 0
    wait("pod", "tcp", "--for=jsonpath={.status.containerStatuses[0].restartCount}=1")
    text = describe("tcp")
    assert "Liveness probe failed: dial tcp" in text and "connect: connection refused" in text
    assert "Container server failed liveness probe, will be restarted" in text
    wait("pod", "tcp", "--for=condition=Ready")

    # The docs' exec liveness probe: `cat /tmp/healthy` fails once the file is removed (after 30 s).
    wait("pod", "liveness-exec", "--for=jsonpath={.status.containerStatuses[0].restartCount}=1")
    text = describe("liveness-exec")
    assert "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory" in text
    assert "Container liveness failed liveness probe, will be restarted" in text
    pod = json.loads(c.skiff("get", "pod", "liveness-exec", "-o", "json").stdout)
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error"
