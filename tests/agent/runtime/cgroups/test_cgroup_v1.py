"""The v1 driver against the real /sys/fs/cgroup hierarchies (root)."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups import CgroupError, list_cgroups, new_manager
from agent.runtime.linux.cgroups.detect import v1_mount_points

pytestmark = pytest.mark.root

MiB = 1 << 20
# Waits on stdin, so the test can move it into a cgroup before it does anything.
SLEEPER = "import sys; sys.stdin.read()"


def _read(path: Path) -> str:
    return path.read_text().strip()


def _cgroup_of(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as controller → path (v1 lines only)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def test_create_makes_the_cgroup_in_every_hierarchy(cgroup_parent):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-a/c1", driver="v1")
    mgr.create()
    mgr.create()   # idempotent
    mounts = v1_mount_points()
    for controller in ("memory", "cpu", "cpuacct", "pids", "freezer"):
        expected = mounts[controller] / cgroup_parent / "pod-a" / "c1"
        assert expected.is_dir(), controller
        assert mgr.paths()[controller] == expected
    assert list_cgroups(parent=cgroup_parent, driver="v1") == ["pod-a"]


def test_set_writes_limits_and_an_update_lifts_them(cgroup_parent):
    pod = new_manager(parent=cgroup_parent, name_path="pod-a", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-a/c1", driver="v1")
    pod.create()
    pod.set(Resources(cpu_limit_millis=1000, memory_limit_bytes=64 * MiB))
    ctr.create()
    ctr.set(Resources(cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=32 * MiB, pids_limit=10))
    p = ctr.paths()
    assert _read(p["cpu"] / "cpu.shares") == "256"            # 250 * 1024 / 1000
    assert _read(p["cpu"] / "cpu.cfs_period_us") == "100000"
    assert _read(p["cpu"] / "cpu.cfs_quota_us") == "50000"     # half of each 100 ms
    assert int(_read(p["memory"] / "memory.limit_in_bytes")) == 32 * MiB
    memsw = p["memory"] / "memory.memsw.limit_in_bytes"
    if memsw.exists():
        assert int(_read(memsw)) == 32 * MiB                   # no swap on top
    assert _read(p["pids"] / "pids.max") == "10"

    # Raising the memory limit must reorder memsw/memory writes; then lift all.
    ctr.set(Resources(memory_limit_bytes=48 * MiB))
    assert int(_read(p["memory"] / "memory.limit_in_bytes")) == 48 * MiB
    ctr.set(Resources())
    assert _read(p["cpu"] / "cpu.shares") == "1024"
    assert _read(p["cpu"] / "cpu.cfs_quota_us") == "-1"
    assert int(_read(p["memory"] / "memory.limit_in_bytes")) > 1 << 60
    assert _read(p["pids"] / "pids.max") == "max"


def test_best_effort_request_gets_minimum_shares(cgroup_parent):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-b", driver="v1")
    mgr.create()
    mgr.set(Resources(cpu_request_millis=0))
    assert _read(mgr.paths()["cpu"] / "cpu.shares") == "2"


def test_add_process_moves_it_in_every_hierarchy(cgroup_parent, children):
    pod = new_manager(parent=cgroup_parent, name_path="pod-a", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-a/c1", driver="v1")
    pod.create()
    ctr.create()
    proc = children.start(SLEEPER)
    ctr.add_process(proc.pid)
    where = _cgroup_of(proc.pid)
    for controller in ("memory", "cpu", "cpuacct", "pids", "freezer"):
        assert where[controller] == f"/{cgroup_parent}/pod-a/c1", controller
    assert ctr.procs() == [proc.pid]
    assert pod.procs() == [proc.pid]     # the pod sees its containers' processes
    assert ctr.stats().pids == 1


def test_stats_report_cpu_memory_and_pids(cgroup_parent, children):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-s", driver="v1")
    mgr.create()
    proc = children.start("import sys; sys.stdin.readline(); block = b'x' * (48 << 20); "
                          "sum(range(2_000_000)); print('ready', flush=True); sys.stdin.readline()")
    mgr.add_process(proc.pid)
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"ready\n"
    stats = mgr.stats()
    assert stats.cpu_usage_seconds > 0
    assert stats.memory_working_set_bytes >= 48 * MiB   # the block it holds is charged here
    assert stats.pids == 1
    cpu, memory, pids = stats[:3]                        # callers may unpack the first three
    assert (cpu, memory, pids) == (stats.cpu_usage_seconds, stats.memory_working_set_bytes, 1)
    # cAdvisor's details: the block is anonymous memory; no limit reads as 0, as cAdvisor reports it.
    assert stats.memory.rss >= 48 * MiB
    assert stats.memory.usage >= stats.memory_working_set_bytes
    assert stats.memory.limit == 0 and stats.memory.oom_events == 0


def test_memory_hog_is_oom_killed_and_reported(cgroup_parent, children):
    pod = new_manager(parent=cgroup_parent, name_path="pod-o", driver="v1")
    hog_cg = new_manager(parent=cgroup_parent, name_path="pod-o/hog", driver="v1")
    calm_cg = new_manager(parent=cgroup_parent, name_path="pod-o/calm", driver="v1")
    for m in (pod, hog_cg, calm_cg):
        m.create()
    hog_cg.set(Resources(memory_limit_bytes=32 * MiB))
    calm_cg.set(Resources(memory_limit_bytes=32 * MiB))
    hog = children.start("import sys; sys.stdin.readline(); block = b'x' * (256 << 20); "
                         "print('survived', flush=True)")
    calm = children.start(SLEEPER)
    hog_cg.add_process(hog.pid)
    calm_cg.add_process(calm.pid)
    assert not hog_cg.oom_killed()
    hog.stdin.write(b"\n")
    hog.stdin.flush()
    assert hog.wait() == -signal.SIGKILL
    assert hog.stdout.read() == b""
    assert hog_cg.oom_killed()
    assert not calm_cg.oom_killed()
    assert calm.poll() is None          # the neighbour is unharmed
    # What container_oom_events_total and container_spec_memory_limit_bytes show.
    assert hog_cg.stats().memory.oom_events >= 1 and hog_cg.stats().memory.limit == 32 * MiB
    assert calm_cg.stats().memory.oom_events == 0


def test_pod_limit_oom_is_seen_by_the_container_and_the_pod(cgroup_parent, children):
    pod = new_manager(parent=cgroup_parent, name_path="pod-p", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-p/c1", driver="v1")
    pod.create()
    pod.set(Resources(memory_limit_bytes=32 * MiB))      # only the pod is limited
    ctr.create()
    hog = children.start("import sys; sys.stdin.readline(); block = b'x' * (256 << 20); "
                         "print('survived', flush=True)")
    ctr.add_process(hog.pid)
    assert not pod.oom_killed()
    hog.stdin.write(b"\n")
    hog.stdin.flush()
    assert hog.wait() == -signal.SIGKILL
    assert ctr.oom_killed()
    assert pod.oom_killed()


def test_freeze_and_thaw(cgroup_parent, children):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-f", driver="v1")
    mgr.create()
    proc = children.start("import sys\nfor line in sys.stdin: print(line.strip(), flush=True)")
    mgr.add_process(proc.pid)
    mgr.freeze()
    assert _read(mgr.paths()["freezer"] / "freezer.state") == "FROZEN"
    mgr.thaw()
    assert _read(mgr.paths()["freezer"] / "freezer.state") == "THAWED"
    proc.stdin.write(b"ping\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"ping\n"   # it runs again


def test_kill_all_kills_descendants_in_child_cgroups(cgroup_parent, children):
    pod = new_manager(parent=cgroup_parent, name_path="pod-k", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-k/c1", driver="v1")
    pod.create()
    ctr.create()
    # A process that forks a grandchild, so kill_all must find more than it was given.
    parent = children.start("import os, sys, time\nsys.stdin.readline()\n"
                            "if os.fork() == 0:\n    time.sleep(1000)\n"
                            "print('forked', flush=True); sys.stdin.read()")
    ctr.add_process(parent.pid)
    parent.stdin.write(b"\n")
    parent.stdin.flush()
    assert parent.stdout.readline() == b"forked\n"
    assert len(pod.procs()) == 2
    pod.kill_all()
    assert pod.procs() == []
    assert parent.wait() == -signal.SIGKILL


def test_kill_all_empties_a_cgroup_that_keeps_forking(cgroup_parent, children):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-fb", driver="v1")
    mgr.create()
    mgr.set(Resources(pids_limit=20))
    # Forks without end (failing forks are retried): what a fork bomb looks like from outside.
    bomb = children.start("import os, sys\nsys.stdin.readline()\nprint('go', flush=True)\n"
                          "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    mgr.add_process(bomb.pid)
    bomb.stdin.write(b"\n")
    bomb.stdin.flush()
    assert bomb.stdout.readline() == b"go\n"
    assert 1 <= mgr.stats().pids <= 20
    mgr.kill_all()
    assert mgr.procs() == []
    assert bomb.wait() == -signal.SIGKILL


def test_kill_all_works_without_the_freezer(cgroup_parent, children):
    # A half-done create or destroy: the process only made it into memory, the freezer cgroup is gone.
    mgr = new_manager(parent=cgroup_parent, name_path="pod-nf", driver="v1")
    mgr.create()
    proc = children.start(SLEEPER)
    (mgr.paths()["memory"] / "cgroup.procs").write_text(str(proc.pid))
    mgr.paths()["freezer"].rmdir()
    mgr.kill_all()
    assert proc.wait() == -signal.SIGKILL
    mgr.destroy()
    assert not any(p.exists() for p in mgr.paths().values())


def test_destroy_leaves_nothing_and_is_idempotent(cgroup_parent, children):
    pod = new_manager(parent=cgroup_parent, name_path="pod-d", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-d/c1", driver="v1")
    pod.create()
    ctr.create()
    ctr.set(Resources(memory_limit_bytes=32 * MiB, pids_limit=5))
    proc = children.start(SLEEPER)
    ctr.add_process(proc.pid)
    pod.destroy()                       # kills the process still inside, removes c1 then the pod
    assert proc.wait() == -signal.SIGKILL
    for path in list(pod.paths().values()) + list(ctr.paths().values()):
        assert not path.exists(), path
    pod.destroy()
    ctr.destroy()
    assert list_cgroups(parent=cgroup_parent, driver="v1") == []


def test_a_container_cpu_limit_above_the_pod_s_is_explained(cgroup_parent):
    pod = new_manager(parent=cgroup_parent, name_path="pod-q", driver="v1")
    ctr = new_manager(parent=cgroup_parent, name_path="pod-q/c1", driver="v1")
    pod.create()
    pod.set(Resources(cpu_limit_millis=500))
    ctr.create()
    with pytest.raises(CgroupError) as info:
        ctr.set(Resources(cpu_limit_millis=1000))
    assert "cpu.cfs_quota_us" in str(info.value) and "50000" in str(info.value)


def test_destroy_of_a_cgroup_never_created_is_quiet(cgroup_parent):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-never/c1", driver="v1")
    mgr.destroy()
    assert mgr.procs() == []
    assert list_cgroups(parent=cgroup_parent, driver="v1") == []


def test_writing_a_bad_value_names_the_file(cgroup_parent):
    mgr = new_manager(parent=cgroup_parent, name_path="pod-e", driver="v1")
    mgr.create()
    with pytest.raises(CgroupError) as info:
        mgr.add_process(999_999_999)
    assert "cgroup.procs" in str(info.value)


def test_names_that_leave_the_hierarchy_are_refused():
    for bad in ("../etc", "/abs", "pod/../../x", ""):
        with pytest.raises(ValueError):
            new_manager(parent="skiff", name_path=bad, driver="v1")


@pytest.mark.slow
def test_many_create_destroy_cycles_leave_nothing(cgroup_parent):
    """A pod and a container cgroup with a live process, 100 times over."""
    import os
    import time

    mounts = v1_mount_points()
    leftover_pids = []
    try:
        for i in range(100):
            pod = new_manager(parent=cgroup_parent, name_path=f"pod-{i}", driver="v1")
            ctr = new_manager(parent=cgroup_parent, name_path=f"pod-{i}/c", driver="v1")
            pod.create()
            pod.set(Resources(pids_limit=64))
            ctr.create()
            ctr.set(Resources(cpu_request_millis=100, cpu_limit_millis=200, memory_limit_bytes=32 * MiB))
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            leftover_pids.append(pid)
            ctr.add_process(pid)
            pod.destroy()
            assert os.waitpid(pid, 0)[1] == signal.SIGKILL   # killed, not exited
            leftover_pids.remove(pid)
        for controller in ("memory", "cpu", "cpuacct", "pids", "freezer"):
            children = [p for p in (mounts[controller] / cgroup_parent).iterdir() if p.is_dir()]
            assert children == [], controller
    finally:
        for pid in leftover_pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
