"""ConfigMaps and Secrets in pods on a real node, as a user sees them: the
Kubernetes docs' task manifests applied unchanged (local images standing in
for theirs), a missing ConfigMap holding a container in
CreateContainerConfigError until it is applied, a configMap volume updated
under a reader loop that never sees a torn file while a subPath mount keeps
its version, a secret volume that is a tmpfs in the container with no copy
on the node's disk, and oom_score_adj by QoS class read from /proc. Real etcd, control plane, agent and runtime (root)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes-docs"
SIZE = 65536

READER = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  containers:
  - name: reader
    image: busybox
    # One read per round into /tmp/x: every byte the same letter, and all {SIZE} of them.
    command:
    - sh
    - -c
    - |
      last=
      while true; do
        cat /etc/cfg/data > /tmp/x
        c=$(head -c1 /tmp/x)
        if [ "$(wc -c < /tmp/x)" -ne {SIZE} ] || [ -n "$(tr -d "$c" < /tmp/x)" ]; then echo TORN; fi
        if [ "$c" != "$last" ]; then echo "seen $c"; last=$c; fi
      done
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: cfg, mountPath: /etc/pinned, subPath: data}}
    resources:
      limits: {{cpu: 100m, memory: 64Mi}}
  volumes:
  - name: cfg
    configMap: {{name: big}}
"""


def _configmap(letter: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  data: {letter * SIZE}\n"


def _has_cap_sys_resource() -> bool:
    effective = int(Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0], 16)
    return bool(effective >> 24 & 1)   # CAP_SYS_RESOURCE


def _files_on_disk(root: Path) -> list[Path]:
    """Every regular file under root, not descending into other filesystems (tmpfs mounts)."""
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]
        found += [Path(top) / f for f in files if (Path(top) / f).is_file() and not (Path(top) / f).is_symlink()
                  and not os.path.ismount(os.path.join(top, f))]   # pinned namespaces are mounts too
    return found


def test_configmaps_and_secrets_on_a_real_node(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    data = ["--data-dir", str(c.data_dir)]
    # Local stand-ins: busybox as the docs' busybox, and a sleeping busybox for nginx and hello-app.
    assert c.skiff("image", "tag", *data, "busybox", "registry.k8s.io/busybox").returncode == 0
    (tmp_path / "sleeper").mkdir()
    (tmp_path / "sleeper" / "Dockerfile").write_text('FROM busybox\nCMD ["sleep", "3600"]\n')
    built = c.skiff("build", *data, "-t", "nginx", str(tmp_path / "sleeper"), timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert c.skiff("image", "tag", *data, "nginx", "gcr.io/google-samples/hello-app:2.0").returncode == 0

    def apply(path: Path) -> None:
        applied = c.skiff("apply", "-f", str(path))
        assert applied.returncode == 0 and applied.stderr == "", applied.stderr

    def wait(*args: str) -> None:
        result = c.skiff("wait", *args, "--timeout", "100s")
        assert result.returncode == 0, result.stderr + c.skiff("describe", "pod", args[1]).stdout

    def exec_(pod: str, *argv: str):
        return c.skiff("exec", pod, "--", *argv)

    # envars.yaml: literal env.
    apply(DOCS / "pods/inject/envars.yaml")
    wait("pod", "envar-demo", "--for=condition=Ready")
    shown = exec_("envar-demo", "sh", "-c", "echo \"$DEMO_GREETING\"")
    assert shown.stdout == "Hello from the environment\n", (shown.returncode, shown.stderr)
    # No requests or limits: BestEffort, first to go when memory runs out (kubelet's oom_score_adj).
    assert exec_("envar-demo", "cat", "/proc/1/oom_score_adj").stdout == "1000\n"

    # valueFrom configMapKeyRef before the ConfigMap exists: CreateContainerConfigError, then it runs.
    apply(DOCS / "pods/pod-configmap-env-var-valueFrom.yaml")
    wait("pod", "dapi-test-pod", "--for=jsonpath={.status.containerStatuses[0].state.waiting.reason}"
                                 "=CreateContainerConfigError")
    assert c.skiff("get", "pod", "dapi-test-pod").stdout.splitlines()[1].split()[2] == "CreateContainerConfigError"
    assert 'configmap "special-config" not found' in c.skiff("describe", "pod", "dapi-test-pod").stdout
    apply(DOCS / "pods/config/configmaps.yaml")
    wait("pod", "dapi-test-pod", "--for=jsonpath={.status.phase}=Succeeded")
    assert c.skiff("logs", "dapi-test-pod").stdout == "very charm\n"
    assert c.skiff("delete", "pod", "dapi-test-pod", "--timeout", "60s").returncode == 0

    # pod-configmap-volume.yaml: one file per key.
    apply(DOCS / "pods/pod-configmap-volume.yaml")
    wait("pod", "dapi-test-pod", "--for=jsonpath={.status.phase}=Succeeded")
    assert c.skiff("logs", "dapi-test-pod").stdout.split() == ["SPECIAL_LEVEL", "SPECIAL_TYPE"]

    # secret-pod.yaml: the files read back, on a tmpfs, read-only, and nowhere on the node's disk.
    apply(DOCS / "pods/inject/secret.yaml")
    apply(DOCS / "pods/inject/secret-pod.yaml")
    wait("pod", "secret-test-pod", "--for=condition=Ready")
    assert exec_("secret-test-pod", "cat", "/etc/secret-volume/password").stdout == "39528$vdg7Jb"
    mounts = [line.split() for line in exec_("secret-test-pod", "cat", "/proc/mounts").stdout.splitlines()]
    (mount,) = [m for m in mounts if m[1] == "/etc/secret-volume"]
    assert mount[2] == "tmpfs" and mount[3].split(",")[0] == "ro"
    refused = exec_("secret-test-pod", "sh", "-c", "echo x > /etc/secret-volume/new")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    # (etcd keeps the Secret object itself: that is the control plane's store, not the node's copy.)
    on_disk = [p for p in _files_on_disk(c.base) if b"39528$vdg7Jb" in p.read_bytes()
               and c.data_dir / "etcd" not in p.parents]
    assert on_disk == []

    # A configMap volume updated under a reader: every version seen whole; the subPath mount keeps "a".
    (tmp_path / "reader.yaml").write_text(READER)
    for letter in "abcdef":
        (tmp_path / f"cm-{letter}.yaml").write_text(_configmap(letter))
    apply(tmp_path / "cm-a.yaml")
    apply(tmp_path / "reader.yaml")
    wait("pod", "reader", "--for=condition=Ready")
    for letter in "bcdef":
        apply(tmp_path / f"cm-{letter}.yaml")
        for _ in range(600):
            if f"seen {letter}" in c.skiff("logs", "reader").stdout:
                break
        else:
            raise AssertionError(f"the update to {letter} never reached the pod")
    logs = c.skiff("logs", "reader").stdout.splitlines()
    assert "TORN" not in logs and logs[:1] == ["seen a"] and logs[-1] == "seen f"
    assert exec_("reader", "head", "-c", "3", "/etc/pinned").stdout == "aaa"
    # Limits only: requests default to them, Guaranteed, and the kernel is told so.
    assert c.skiff("get", "pod", "reader", "-o", "jsonpath={.status.qosClass}").stdout == "Guaranteed"
    adjusted = int(exec_("reader", "cat", "/proc/1/oom_score_adj").stdout)
    if _has_cap_sys_resource():
        assert adjusted == -997
    else:   # a node that may not lower it (itself in a container) leaves what the container inherited
        assert adjusted <= 0
    pod = c.skiff("get", "pod", "reader", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
    assert pod.stdout == "0"
