"""Attach to a running container's own stdio on a real node: a `stdin: true`
busybox shell loop reads lines from its stdin (a FIFO the runtime keeps) and
echoes them; `kubectl attach -i` (WebSocket channels on the REST front door)
and `skiff attach -i` (gRPC) each pass it lines and see only what it writes
from then on, until it exits."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

ECHO = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: echo
    image: busybox
    stdin: true
    command: [sh, -c, 'echo ready; while read l; do echo "got $l"; [ "$l" = quit ] && exit 3; done']
"""


def test_attach_to_a_stdin_container(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    assert c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox").returncode == 0
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    manifest = tmp_path / "echo.yaml"
    manifest.write_text(ECHO.format(name="echo-skiff") + "---\n" + ECHO.format(name="echo-kubectl"))
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    for pod in ("echo-skiff", "echo-kubectl"):
        waited = c.skiff("wait", "pod", pod, "--for=condition=Ready", "--timeout", "120s")
        assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", pod).stdout

    attached = subprocess.run([*c.up_args()[:3], "attach", "-i", "echo-skiff"], env=c.env(), input="hi\nquit\n",
                              capture_output=True, text=True, timeout=120)
    assert (attached.returncode, attached.stdout) == (3, "got hi\ngot quit\n"), attached.stderr
    assert c.skiff("logs", "echo-skiff").stdout == "ready\ngot hi\ngot quit\n"

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    k = subprocess.run([kubectl, "--cache-dir", str(c.base / "kube-cache"), "attach", "-i", "echo-kubectl"],
                       env=c.env(), input="hello\nquit\n", capture_output=True, text=True, timeout=120)
    assert (k.returncode, k.stdout) == (0, "got hello\ngot quit\n"), k.stderr
    finished = c.skiff("get", "pod", "echo-kubectl", "-o", "jsonpath={.status.phase}")
    assert finished.stdout == "Failed"   # exit 3, restartPolicy Never

    # A finished container cannot be attached to; the error says why.
    late = c.skiff("attach", "echo-skiff")
    assert late.returncode == 1 and "is not running" in late.stderr, late.stderr
