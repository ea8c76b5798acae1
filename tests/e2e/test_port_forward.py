"""Port forwarding into a pod on a real node: `skiff port-forward` (gRPC, through
the control plane to the pod's agent, which connects inside the pod's network
namespace), the official Python client's `portforward` (WebSocket channels on
the REST front door), and kubectl's own port-forward (SPDY/3.1 tunnelled in a
WebSocket) with a connection refused in the pod reported by kubectl."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

# No proxy: an http_proxy in the environment must not intercept loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

WEB = """\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"""


def _http_over(sock) -> bytes:
    """An HTTP/1.0 GET / over a connected socket; the whole answer (the server closes)."""
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_port_forward_into_a_pod(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    assert c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox").returncode == 0
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    waited = c.skiff("wait", "pod", "web", "--for=condition=Ready", "--timeout", "120s")
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", "web").stdout

    # skiff port-forward: a free local port, two connections in turn.
    proc = subprocess.Popen([*c.up_args()[:3], "port-forward", "pod/web", ":8080"], env=c.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("Forwarding from 127.0.0.1:") and first.endswith(" -> 8080\n"), \
            first + proc.stderr.read() if proc.poll() is not None else first
        local = int(first.split()[2].rpartition(":")[2])
        answers = []
        for _ in range(2):
            try:
                with _OPENER.open(f"http://127.0.0.1:{local}/", timeout=30) as r:
                    answers.append((r.status, r.read()))
            except OSError as exc:
                answers.append(exc)
    finally:
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert answers == [(200, b"web\n")] * 2, out + err
    assert out.splitlines() == ["Handling connection for 8080"] * 2, out + err

    missing = c.skiff("port-forward", "pod/nope", "8080")
    assert (missing.returncode, missing.stderr) == (1, 'error: Pod "nope" in namespace "default" not found\n')

    # The Python client's portforward: one WebSocket, channels per port.
    from kubernetes import client, config
    from kubernetes.stream import portforward
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(c.base / "kubeconfig")))
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080,8081")
    try:
        answer = _http_over(pf.socket(8080))
        assert answer.startswith(b"HTTP/1.") and answer.endswith(b"\r\n\r\nweb\n"), answer
        assert pf.error(8080) is None
        # Nothing listens on 8081: the port's error channel says so and its socket is closed.
        refused = pf.socket(8081)
        refused.settimeout(60)
        assert refused.recv(1) == b""
        assert "8081" in pf.error(8081) and "refused" in pf.error(8081), pf.error(8081)
    finally:
        pf.close()

    # kubectl's own port-forward (SPDY/3.1 tunnelled in a WebSocket): a local
    # port, two connections in turn, each answered by the pod.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    local = free_port()
    k = subprocess.Popen([kubectl, "--cache-dir", str(c.base / "kube-cache"), "port-forward", "--address",
                          "127.0.0.1", "pod/web", f"{local}:8080"], env=c.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = k.stdout.readline()
        assert first == f"Forwarding from 127.0.0.1:{local} -> 8080\n", \
            first + (k.stderr.read() if k.poll() is not None else "")
        answers = []
        for _ in range(2):
            try:
                with _OPENER.open(f"http://127.0.0.1:{local}/", timeout=30) as r:
                    answers.append((r.status, r.read()))
            except OSError as exc:
                answers.append(exc)
        # A port nothing listens on in the pod: kubectl hears the refusal on the error stream.
        refused_local = free_port()
        r = subprocess.Popen([kubectl, "--cache-dir", str(c.base / "kube-cache"), "port-forward", "--address",
                              "127.0.0.1", "pod/web", f"{refused_local}:8081"], env=c.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert r.stdout.readline() == f"Forwarding from 127.0.0.1:{refused_local} -> 8081\n"
            with pytest.raises(OSError):
                _OPENER.open(f"http://127.0.0.1:{refused_local}/", timeout=30).read()
        finally:
            r.terminate()
            _, refused_err = r.communicate(timeout=30)
    finally:
        k.terminate()
        out, err = k.communicate(timeout=30)
    assert answers == [(200, b"web\n")] * 2, out + err
    assert out.count(f"Handling connection for {local}") == 2, out + err
    assert "8081" in refused_err and "refused" in refused_err, refused_err
