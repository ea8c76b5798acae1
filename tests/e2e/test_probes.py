"""Probes on a real node, as a user sees them through `skiff`: an httpGet
readiness probe against busybox httpd flips the pod's Ready both ways, a
tcpSocket liveness probe restarts a container whose port closed, and the
Kubernetes docs' exec liveness manifest (applied unchanged, a local busybox
standing in for its image) restarts its container with kubelet's events; so
do the docs' http-liveness (a stand-in for agnhost's `liveness` server: 200
on /healthz for 10 s, then 500; the probe's Custom-Header reaches it) and
tcp-liveness-readiness (a stand-in goproxy listening on 8080) manifests.
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

# Local stand-ins for the docs' images, built FROM busybox. agnhost's `liveness`
# answers /healthz 200 for its first 10 s, then 500; this one does the same with
# busybox nc, one handler per connection, and prints each request's headers.
AGNHOST = """\
#!/bin/sh
[ "$1" = liveness ] || { echo "stand-in agnhost: only 'liveness'" >&2; exit 2; }
date +%s > /tmp/started
exec nc -ll -p 8080 -e /liveness-handler
"""
AGNHOST_HANDLER = """\
#!/bin/sh
cr=$(printf '\\r')
while read -r line && [ "${line%$cr}" != "" ]; do echo "${line%$cr}" >&2; done
if [ $(( $(date +%s) - $(cat /tmp/started) )) -lt 10 ]; then
  printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok'
else
  printf 'HTTP/1.1 500 Internal Server Error\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nerror'
fi
"""
STANDINS = {
    "registry.k8s.io/e2e-test-images/agnhost:2.40": (
        'FROM busybox\nCOPY agnhost liveness-handler /\nENTRYPOINT ["/agnhost"]\n',
        {"agnhost": AGNHOST, "liveness-handler": AGNHOST_HANDLER}),
    "registry.k8s.io/goproxy:0.1": (
        'FROM busybox\nENTRYPOINT ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"]\n', {}),
}


def test_probes_on_a_real_node(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    data = ["--data-dir", str(c.data_dir)]
    tagged = c.skiff("image", "tag", *data, "busybox", "registry.k8s.io/busybox:1.27.2")
    assert tagged.returncode == 0, tagged.stderr
    for i, (image, (dockerfile, files)) in enumerate(STANDINS.items()):
        context = tmp_path / f"standin-{i}"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        for name, text in files.items():
            (context / name).write_text(text)
            (context / name).chmod(0o755)
        built = c.skiff("build", *data, "-t", image, str(context), timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr

    (tmp_path / "ready.yaml").write_text(READY)
    (tmp_path / "live.yaml").write_text(LIVE)
    for manifest in (tmp_path / "ready.yaml", tmp_path / "live.yaml", DOCS / "pods/probe/exec-liveness.yaml",
                     DOCS / "pods/probe/http-liveness.yaml", DOCS / "pods/probe/tcp-liveness-readiness.yaml"):
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

    # The docs' http-liveness: healthy for 10 s, then 500 -> restarted, with the probe's header seen.
    wait("pod", "liveness-http", "--for=jsonpath={.status.containerStatuses[0].restartCount}=1")
    text = describe("liveness-http")
    assert "Liveness probe failed: HTTP probe failed with statuscode: 500" in text
    assert "Container liveness failed liveness probe, will be restarted" in text
    seen = c.skiff("logs", "liveness-http", "--previous").stdout
    assert "GET /healthz HTTP/1.1" in seen and "Custom-Header: Awesome" in seen, seen

    # The docs' tcp-liveness-readiness: Ready once its tcpSocket probes pass (after 15 s), never restarted.
    wait("pod", "goproxy", "--for=condition=Ready")
    pod = json.loads(c.skiff("get", "pod", "goproxy", "-o", "json").stdout)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
