"""`skiff up` / `skiff down` drive real etcd and control plane processes.

These run with --no-agent: the node agent has its own end-to-end test
(test_hello.py). What is checked here is what a user of `up`/`down` sees:
progress, the client config, "already running", a clean stop by PID, a
component that dies at start reported with its log, and Ctrl-C in the
foreground stopping everything.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import alive

pytestmark = [pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]


def test_up_detach_then_down_purge(private_cluster):
    c = private_cluster
    up = subprocess.run(c.up_args("--detach", "--no-agent"), env=c.env(), capture_output=True, text=True,
                        timeout=180)
    assert up.returncode == 0, up.stderr
    # Secure by default (decision 34): the CA first, named by its fingerprint; the client config names its files.
    lines = up.stdout.splitlines()
    assert lines[0].startswith(f"cluster CA {c.data_dir / 'pki' / 'ca.crt'} (SHA-256 fingerprint "), lines[0]
    assert lines[1:3] == ["starting etcd ... ok", "starting controlplane ... ok"]
    pki = c.data_dir / "pki"
    assert yaml.safe_load(c.client_config.read_text()) == {"current-context": "skiff", "contexts": [{
        "name": "skiff", "server": c.api_address, "certificate-authority": str(pki / "ca.crt"),
        "client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}]}
    pids = c.pids()
    assert set(pids) == {"supervisor", "etcd", "controlplane"} and all(alive(p) for p in pids.values())
    assert up.stdout.splitlines()[-1] == (f"supervisor started (pid {pids['supervisor']}); "
                                          "`skiff status` shows the components")
    assert (c.data_dir / "logs" / "etcd.log").exists() and (c.data_dir / "logs" / "controlplane.log").exists()

    # The CLI finds the cluster from the config `up` wrote.
    nodes = c.skiff("version")
    assert nodes.returncode == 0 and f"Server: {c.api_address}" in nodes.stdout, nodes.stderr

    again = subprocess.run(c.up_args("--detach", "--no-agent"), env=c.env(), capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "already running" in again.stdout
    assert c.pids() == pids

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--purge")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == [
        f"stopping supervisor (pid {pids['supervisor']}) ... ok",
        f"stopping controlplane (pid {pids['controlplane']}) ... ok",
        f"stopping etcd (pid {pids['etcd']}) ... ok",
        f"removed {c.data_dir}",
        f"removed context skiff from {c.client_config}",
        f"removed context skiff from {c.base / 'kubeconfig'}"]   # kubectl's, which `up` wrote
    assert not any(alive(p) for p in pids.values())
    assert not c.data_dir.exists()


def test_component_dying_at_start_is_reported_and_nothing_is_left(private_cluster):
    c = private_cluster
    up = subprocess.run(c.up_args("--detach", "--no-agent", "--etcd-binary", "/bin/false"), env=c.env(),
                        capture_output=True, text=True, timeout=60)
    assert up.returncode == 1
    log = c.data_dir / "logs" / "etcd.log"
    assert up.stderr == f"error: etcd exited at start (exit code 1); full log: {log}\n"
    assert up.stdout.split("\n", 1)[1] == "starting etcd ... failed\nstopping etcd (pid %d) ... ok\n" % int(
        up.stdout.split("pid ")[1].split(")")[0])   # after the cluster CA's line
    assert list((c.data_dir / "run").iterdir()) == []
    assert not (c.base / "client-config").exists()


def test_port_in_use_is_refused_before_starting_anything(private_cluster):
    import socket

    c = private_cluster
    with socket.socket() as s:
        s.bind(("127.0.0.1", c.ports["api"]))
        s.listen()
        up = subprocess.run(c.up_args("--detach", "--no-agent"), env=c.env(), capture_output=True, text=True,
                            timeout=60)
    assert up.returncode == 1 and up.stdout == ""
    assert up.stderr == f"error: 127.0.0.1:{c.ports['api']} (the API port) is already in use by another program\n"


def test_foreground_up_stops_everything_on_ctrl_c(private_cluster):
    c = private_cluster
    proc = subprocess.Popen(c.up_args("--no-agent"), env=c.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("running in the foreground"):
            line = proc.stdout.readline()
            assert line, f"up ended early: {lines} {proc.stderr.read()}"
            lines.append(line)
        pids = c.pids()
        assert set(pids) == {"supervisor", "etcd", "controlplane"} and pids["supervisor"] == proc.pid
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # a requested stop is not a failure
        assert f"stopping controlplane (pid {pids['controlplane']}) ... ok" in out
        assert f"stopping etcd (pid {pids['etcd']}) ... ok" in out
        assert not any(alive(pids[name]) for name in ("etcd", "controlplane"))
        assert list((c.data_dir / "run").iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


STUBBORN = """\
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 300
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
"""


def test_purge_removes_what_a_pod_slower_than_the_timeout_left(private_cluster, tmp_path):
    """`down --purge` gives the pods --pods-timeout to go; one still stopping then
    (a long grace period, SIGTERM ignored) is removed once the agent has stopped:
    no process, mount or cgroup of it stays."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    (tmp_path / "pod.yaml").write_text(STUBBORN)
    assert c.skiff("apply", "-f", str(tmp_path / "pod.yaml")).returncode == 0
    running = c.skiff("wait", "pod", "stubborn", "--for=condition=Ready", "--timeout", "120s")
    assert running.returncode == 0, running.stderr
    cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"*/{c.cgroup_parent}/pod-*")]
    assert cgroups

    down = c.skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), "--purge",
                   "--pods-timeout", "3", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removing the pods' leftover containers, sandboxes and volumes ... ok" in down.stdout, down.stdout
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(c.base) + "/")]
    assert mounts == [] and not any(p.exists() for p in cgroups)
    assert not c.data_dir.exists() and not c.run_dir.exists()
