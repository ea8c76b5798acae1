"""kubectl against a real node: `skiff up` writes the kubeconfig (a private
one here), `kubectl logs` (plain, --tail, -f) reads a busybox pod's output and
`kubectl exec` runs commands in it (WebSocket channel protocol), through the
control plane's REST API and the node's agent, and `kubectl top` reads the
agents' stats."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.e2e.terminal import sizes_seen_in_a_terminal

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]


def test_kubectl_logs_and_exec_through_the_rest_api(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    c = private_cluster
    assert c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox").returncode == 0
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    assert "kubectl: context skiff in" in up.stdout

    def k(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl, "--cache-dir", str(c.base / "kube-cache"), *args], env=c.env(),
                              capture_output=True, text=True, timeout=120, input=input)

    counter = c.skiff("run", "counter", "--image", "busybox", "--restart", "Never", "--",
                      "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 1; done")
    assert counter.returncode == 0, counter.stderr
    waited = k("wait", "pod", "counter", "--for=condition=Ready", "--timeout=120s")
    assert waited.returncode == 0, waited.stderr
    followed = k("logs", "-f", "counter")
    assert (followed.returncode, followed.stdout) == (0, "line 1\nline 2\nline 3\n"), followed.stderr
    assert k("logs", "counter", "--tail=1").stdout == "line 3\n"
    missing = k("logs", "nope")
    # kubectl's own wording for logs (it looks the pod up first), as against Kubernetes.
    assert (missing.returncode, missing.stderr.strip()) == (
        1, 'error: error from server (NotFound): pods "nope" not found in namespace "default"')

    sleeper = c.skiff("run", "sleeper", "--image", "busybox", "--", "sleep", "300")
    assert sleeper.returncode == 0, sleeper.stderr
    assert k("wait", "pod", "sleeper", "--for=condition=Ready", "--timeout=120s").returncode == 0
    execed = k("exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (execed.returncode, execed.stdout, execed.stderr.splitlines()[0]) == (7, "out\n", "err"), execed.stderr
    piped = k("exec", "-i", "sleeper", "--", "sh", "-c", "tr a-z A-Z; hostname", input="hello from stdin\n")
    assert (piped.returncode, piped.stdout) == (0, "HELLO FROM STDIN\nsleeper\n"), piped.stderr
    assert _exec_in_a_terminal(c, kubectl, "sleeper") == ["33 101", "40 120"]

    # kubectl top reads metrics.k8s.io, served from the agents' stats.
    top_pods = k("top", "pods")
    assert top_pods.returncode == 0, top_pods.stderr
    assert top_pods.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert "sleeper" in [line.split()[0] for line in top_pods.stdout.splitlines()[1:]]
    top_nodes = k("top", "nodes")
    assert top_nodes.returncode == 0, top_nodes.stderr
    assert top_nodes.stdout.splitlines()[1].split()[0] == "skiff-test-node"


def _exec_in_a_terminal(c, kubectl: str, pod: str) -> list[str]:
    """`kubectl exec -it POD -- ...` on a resized terminal: the sizes the command saw."""
    return sizes_seen_in_a_terminal([kubectl, "--cache-dir", str(c.base / "kube-cache"), "exec", "-it", pod, "--",
                                     "sh", "-c", "stty size; read x; stty size"], c.env())
