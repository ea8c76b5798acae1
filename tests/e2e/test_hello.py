"""The walking skeleton end to end, as the README runs it: `skiff up --detach`,
apply manifests/examples/hello.yaml, read its log, see it Succeeded with exit
code 0, delete it, and find nothing of it left on the machine; then `down
--purge`. Real etcd, control plane, agent and runtime (root, real kernel), in
a private data dir, run dir and free ports."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import alive

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "manifests" / "examples" / "hello.yaml"


def leftovers(uid: str) -> list[str]:
    """Mounts, cgroups and processes that still mention the pod's uid."""
    found = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if uid in line]
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(root, d) for d in dirs if uid in d]
        if root.count("/") > 6:
            dirs[:] = []
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                environ_and_cmd = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if uid.encode() in environ_and_cmd:
                found.append(f"process {pid_dir.name}")
    return found


def test_hello_pod_end_to_end(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)  # up_args starts with python -m skiff.cli.main
    assert up.returncode == 0, up.stderr + _log_tails(c)
    lines = up.stdout.splitlines()
    assert lines[1].startswith("cluster CA ")   # secure by default (decision 34): the CA, by its fingerprint
    assert [lines[0], *lines[2:5]] == ["preparing image busybox ... ok", "starting etcd ... ok",
                                       "starting controlplane ... ok",
                                       "starting agent (node skiff-test-node) ... ok"]

    nodes = c.skiff("get", "nodes")
    assert nodes.stdout.splitlines()[1].split()[:2] == ["skiff-test-node", "Ready"]

    applied = c.skiff("apply", "-f", str(HELLO))
    assert (applied.returncode, applied.stdout) == (0, "pod/hello created\n"), applied.stderr
    waited = c.skiff("wait", "pod", "hello", "--for=jsonpath={.status.phase}=Succeeded", "--timeout", "120s")
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", "hello").stdout + _log_tails(c)

    logs = c.skiff("logs", "hello")
    assert logs.returncode == 0, logs.stderr
    assert "hostname hello" in logs.stdout.splitlines()

    pod = json.loads(c.skiff("get", "pods", "-o", "json").stdout)["items"][0]
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    table = c.skiff("get", "pods").stdout.splitlines()
    assert table[1].split()[:3] == ["hello", "0/1", "Completed"]

    uid = pod["metadata"]["uid"]
    deleted = c.skiff("delete", "pod", "hello", "--timeout", "60s")
    assert (deleted.returncode, deleted.stdout) == (0, 'pod "hello" deleted\n'), deleted.stderr
    assert leftovers(uid) == []

    pids = c.pids()
    # The agent's service proxy keeps a table of its own beside the node's (decision 25).
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"ip {c.nft_table}-svc\n" in tables + "\n", tables
    kubeconfig = Path(c.env()["KUBECONFIG"])
    assert "skiff" in {ctx["name"] for ctx in yaml.safe_load(kubeconfig.read_text())["contexts"]}
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), "--purge")
    assert down.returncode == 0, down.stderr
    # kubectl's context went with the credentials it held.
    assert f"removed context skiff from {kubeconfig}" in down.stdout.splitlines(), down.stdout
    assert yaml.safe_load(kubeconfig.read_text())["contexts"] == []
    assert not any(alive(p) for p in pids.values())
    assert not c.data_dir.exists() and not c.run_dir.exists()
    # The cluster's own node-wide objects are gone too: cgroup parent, bridge, nftables table.
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{c.cgroup_parent}")), "the agent's parent cgroup is left"
    assert not Path(f"/sys/class/net/{c.bridge}").exists(), f"bridge {c.bridge} is left"
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"inet {c.nft_table}\n" not in tables + "\n", f"nftables table {c.nft_table} is left"
    assert f"ip {c.nft_table}-svc\n" not in tables + "\n", f"the service table {c.nft_table}-svc is left"
    # Last, so that the cleanup above is checked even while the runtime does not
    # yet give the container PID 1 or a view of its own cgroup.
    assert logs.stdout.splitlines() == ["pid 1", "hostname hello", f"memory limit {64 * 1024 * 1024}"]


def _log_tails(c) -> str:
    out = []
    for log in sorted((c.data_dir / "logs").glob("*.log")):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(out)
