"""A private all-in-one cluster for end-to-end tests: `skiff up` with its own
data dir, run dir, client config and free loopback ports, so it runs beside a
real cluster. Whatever the test does, the processes the pid files name are
stopped (by PID) and the directories removed afterwards.

A test talks to it as a user does: `skiff` (c.skiff) and kubectl (c.env())
read the client config and kubeconfig `up` wrote; in-process clients come from
`c.client()`, that client config's server and credentials (skiff.config.connect),
so the same test runs on a secure cluster (the default) and an --insecure one."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: str, check, timeout: float = 120.0, interval: float = 0.5):
    """Poll `check()` every `interval` seconds until it returns something truthy, and return
    that; after `timeout` seconds, fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)


@dataclass
class PrivateCluster:
    base: Path
    ports: dict[str, int] = field(default_factory=dict)
    # Machine-wide names of its own, so it never shares a bridge, an nftables
    # table, a cgroup parent or pod addresses with another cluster here.
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def cgroup_parent(self) -> str:
        return f"skiff-test-{self.tag}"

    @property
    def bridge(self) -> str:
        return f"skiff-e{self.tag}"

    @property
    def nft_table(self) -> str:
        return f"skiff_e2e_{self.tag}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def api_address(self) -> str:
        return f"127.0.0.1:{self.ports['api']}"

    def env(self) -> dict[str, str]:
        # A private kubeconfig and REST port: `up` writes context skiff there, never to ~/.kube/config.
        env = dict(os.environ, SKIFF_CONFIG=str(self.client_config), PYTHONUNBUFFERED="1",
                   KUBECONFIG=str(self.base / "kubeconfig"), SKIFF_REST_LISTEN=f"127.0.0.1:{self.ports['rest']}",
                   PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        env.pop("SKIFF_SERVER", None)
        return env

    def up_args(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(self.data_dir),
                "--run-dir", str(self.run_dir), "--node-name", "skiff-test-node",
                "--etcd-port", str(self.ports["etcd"]), "--etcd-peer-port", str(self.ports["peer"]),
                "--api-port", str(self.ports["api"]), "--controlplane-metrics-port", str(self.ports["cpm"]),
                "--agent-port", str(self.ports["agent"]), "--agent-metrics-port", str(self.ports["agentm"]),
                "--bridge", self.bridge, "--nft-table", self.nft_table, "--cgroup-parent", self.cgroup_parent,
                "--cluster-cidr", f"10.{100 + int(self.tag, 16) % 100}.0.0/16",
                # No packet may leave the machine: a node on the host keeps its pods fenced
                # unless the test asks (egress tests use --nodes, whose namespaces have no way out).
                *(() if "--pod-egress" in extra else ("--pod-egress", "none")),
                *extra]

    @property
    def client_config(self) -> Path:
        return self.base / "client-config"

    def client(self):
        """An ApiClient (skiff.client) as `skiff` connects: the server and credentials of the
        client config `up` wrote (the admin's certificate on a secure cluster)."""
        from skiff.config import connect
        return connect(path=self.client_config)

    def skiff(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `skiff ARGS` as a user would: the server comes from the config `up` wrote."""
        return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], cwd=self.base, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def pids(self) -> dict[str, int]:
        out = {}
        for pid_file in (self.data_dir / "run").glob("*.pid"):
            out[pid_file.stem] = int(pid_file.read_text().split()[0])
        return out


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def private_cluster():
    base = Path(tempfile.mkdtemp(prefix="skiff-test-up-"))
    cluster = PrivateCluster(base=base, ports={name: free_port() for name in
                                               ("etcd", "peer", "api", "cpm", "agent", "agentm", "rest")})
    try:
        yield cluster
    finally:
        # `skiff down --purge` first: it deletes the pods through the API so the
        # agent frees their mounts, cgroups and addresses; then by PID whatever it left.
        pids = cluster.pids() if (cluster.data_dir / "run").exists() else {}
        if pids or cluster.data_dir.exists():   # a stopped cluster is purged too: its network stays otherwise
            try:
                subprocess.run([sys.executable, "-m", "skiff.cli.main", "down", "--data-dir", str(cluster.data_dir),
                                "--run-dir", str(cluster.run_dir), "--stop-timeout", "5", "--pods-timeout", "30",
                                "--grace-period", "2", "--purge"], env=cluster.env(), capture_output=True, timeout=180)
            except subprocess.TimeoutExpired:   # the processes are still stopped by PID below
                pass
        # The supervisor first, or it would start again what is killed here.
        for pid in sorted(pids.values(), key=lambda pid: pid != pids.get("supervisor")):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                while alive(pid):
                    time.sleep(0.05)
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if line.split()[4].startswith(str(base) + "/")]
        # Never rmtree across a mount (it would delete inside an overlay or a bind mount).
        assert not mounts, f"left mounted under {base}: {mounts}"
        shutil.rmtree(base, ignore_errors=True)
        # Leave nothing behind: the node's table and the service proxy's are gone with the cluster.
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.split("\n")
        left = [line.strip() for line in tables if line.split()[-1:] and
                line.split()[-1] in (cluster.nft_table, f"{cluster.nft_table}-svc")]
        for line in left:
            subprocess.run(["nft", "delete", *line.split()], capture_output=True)
        assert not left, f"left behind by skiff down --purge: {left}"
