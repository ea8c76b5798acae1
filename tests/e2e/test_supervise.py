"""The all-in-one cluster heals itself, as a user sees it (issue 18): with a
pod running under `skiff up --detach`, `kill -9` of each component in turn is
followed by a restart (the supervisor's), counted in `skiff status` and
logged; the pod's processes never change (no container restart), and at no
time do two etcds, control planes or agents of the cluster run. `skiff up`
on a partly running cluster starts only what is missing."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import alive
from tests.e2e.test_restart import POD, pod_processes

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def instances(c, name: str) -> list[int]:
    """PIDs of this cluster's processes of component `name` (found by command line, not pid file).
    A child of one of them that has the same command line is a fork on its way to an exec
    (the agent runs nft, ip, mount...), not a second copy: left out."""
    marker = {"etcd": f"{c.data_dir}/etcd", "controlplane": f"--listen {c.api_address}",
              "agent": f"--data-dir {c.data_dir}"}[name]
    program = {"etcd": "etcd", "controlplane": "controlplane.main", "agent": "agent.main"}[name]
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if program in cmdline and marker in cmdline and alive(int(proc.name)):
                out.append(int(proc.name))
    return [pid for pid in out if _ppid(pid) not in out]


def status(c) -> tuple[int, dict[str, dict]]:
    r = c.skiff("status", "--data-dir", str(c.data_dir), "-o", "json")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, {row["component"]: row for row in json.loads(r.stdout)}


def kill9_and_wait_healed(c, name: str, *, uid: str, before: set[int], timeout: float = 180) -> dict:
    old = c.pids()[name]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while True:
        # Never two at once, at any moment we look.
        for component in ("etcd", "controlplane", "agent"):
            assert len(instances(c, component)) <= 1, f"two {component} processes: {instances(c, component)}"
        code, rows = status(c)
        if code == 0 and rows[name]["pid"] not in (None, old):
            break
        assert time.monotonic() < deadline, f"{name} not back after {timeout:g}s: {rows}"
        time.sleep(0.5)
    assert instances(c, name) == [rows[name]["pid"]]
    assert pod_processes(uid) == before, "the pod's processes changed"
    return rows


def test_cluster_heals_after_kill_9_of_each_component(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up_args = c.up_args("--detach")[3:]   # up_args starts with python -m skiff.cli.main
    up = c.skiff(*up_args, timeout=180)
    assert up.returncode == 0, up.stderr
    manifest = c.base / "sleeper.yaml"
    manifest.write_text(POD)
    assert c.skiff("apply", "-f", str(manifest)).returncode == 0
    waited = c.skiff("wait", "pod", "sleeper", "--for=jsonpath={.status.phase}=Running", "--timeout", "120s")
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", "sleeper").stdout
    uid = json.loads(c.skiff("get", "pod", "sleeper", "-o", "json").stdout)["metadata"]["uid"]
    before = pod_processes(uid)
    assert before

    table = c.skiff("status", "--data-dir", str(c.data_dir))
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["COMPONENT", "PID", "HEALTH", "RESTARTS", "ADDRESS", "LOG"]
    pids = c.pids()
    assert lines[-1] == "pod egress: none"   # the e2e fixture's choice (decision 30)
    assert [ln.split() for ln in lines[1:-1]] == [
        ["supervisor", str(pids["supervisor"]), "running", "-", "-", str(c.data_dir / "logs/supervisor.log")],
        ["etcd", str(pids["etcd"]), "healthy", "0", f"127.0.0.1:{c.ports['etcd']}", str(c.data_dir / "logs/etcd.log")],
        ["controlplane", str(pids["controlplane"]), "healthy", "0", c.api_address,
         str(c.data_dir / "logs/controlplane.log")],
        ["agent", str(pids["agent"]), "Ready", "0", f"127.0.0.1:{c.ports['agent']}",
         str(c.data_dir / "logs/agent.log")]]

    for name in ("agent", "controlplane", "etcd"):
        rows = kill9_and_wait_healed(c, name, uid=uid, before=before)
        assert rows[name]["restarts"] == 1 and rows[name]["last_exit"] == "exited", rows[name]
    assert {name: row["restarts"] for name, row in rows.items()} == {
        "supervisor": None, "etcd": 1, "controlplane": 1, "agent": 1}
    log = (c.data_dir / "logs" / "supervisor.log").read_text()
    for name in ("agent", "controlplane", "etcd"):
        assert f"{name} (pid {pids[name]}) exited; restarting in" in log, log
        assert f"{name} restarted (pid {rows[name]['pid']}, restart 1)" in log, log

    # A second kill of a component the supervisor started itself: it is its
    # child, so the log says how it ended.
    agent = rows["agent"]["pid"]
    rows = kill9_and_wait_healed(c, "agent", uid=uid, before=before)
    assert rows["agent"]["restarts"] == 2 and rows["agent"]["last_exit"] == "killed by SIGKILL"
    assert f"agent (pid {agent}) killed by SIGKILL; restarting in" in (
        c.data_dir / "logs" / "supervisor.log").read_text()

    pod = json.loads(c.skiff("get", "pod", "sleeper", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert c.skiff("logs", "sleeper").stdout == "started\n"


def test_up_on_a_partly_running_cluster_starts_only_what_is_missing(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up_args = c.up_args("--detach", "--no-bootstrap")[3:]
    assert c.skiff(*up_args, timeout=180).returncode == 0
    pids = c.pids()
    # Without its supervisor, a dead agent stays dead ...
    for name in ("supervisor", "agent"):
        os.kill(pids[name], signal.SIGKILL)
        while alive(pids[name]):
            time.sleep(0.05)
    code, rows = status(c)
    assert code == 1 and rows["supervisor"]["health"] == "down" and rows["agent"]["health"] == "down"

    # ... until `skiff up` starts what is missing and leaves the rest alone.
    again = c.skiff(*up_args, timeout=180)
    assert again.returncode == 0, again.stderr
    out = again.stdout.splitlines()
    assert out[0] == (f"already running: etcd pid {pids['etcd']}, controlplane pid {pids['controlplane']}; "
                      "starting what is missing")
    assert "starting agent (node skiff-test-node) ... ok" in out
    now = c.pids()
    assert (now["etcd"], now["controlplane"]) == (pids["etcd"], pids["controlplane"])
    assert now["agent"] != pids["agent"] and now["supervisor"] != pids["supervisor"]
    code, rows = status(c)
    assert code == 0, rows
    assert all(len(instances(c, name)) == 1 for name in ("etcd", "controlplane", "agent"))
