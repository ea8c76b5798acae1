"""The v2 driver on the real cgroup2 tree at /sys/fs/cgroup/unified (root).

On this hybrid host memory, cpu and pids are bound to v1, so the unified tree
offers none of them: this exercises what v2 does on its own (the directory
tree, cgroup.procs, cpu.stat, cgroup.freeze, cgroup.kill, removal).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups import CgroupError, new_manager

pytestmark = pytest.mark.root

UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.fixture
def unified(cgroup_parent):
    if not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 tree at /sys/fs/cgroup/unified")
    return cgroup_parent


def test_v2_lifecycle_on_the_real_unified_tree(unified, children):
    pod = new_manager(parent=unified, name_path="pod-u", driver="v2", root=UNIFIED)
    ctr = new_manager(parent=unified, name_path="pod-u/c1", driver="v2", root=UNIFIED)
    pod.create()
    ctr.create()
    ctr.set(Resources())      # no limits asked: nothing to write even without controllers
    leaf = ctr.paths()["unified"]
    assert leaf == UNIFIED / unified / "pod-u" / "c1" and leaf.is_dir()

    proc = children.start("import sys\nsys.stdin.readline(); sum(range(1_000_000)); print('ready', flush=True)\n"
                          "for line in sys.stdin: print(line.strip(), flush=True)")
    ctr.add_process(proc.pid)
    assert f"0::/{unified}/pod-u/c1" in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
    assert ctr.procs() == [proc.pid] and pod.procs() == [proc.pid]
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"ready\n"
    stats = ctr.stats()
    assert stats.cpu_usage_seconds > 0
    assert stats.pids == 1

    ctr.freeze()
    assert "frozen 1" in (leaf / "cgroup.events").read_text()
    ctr.thaw()
    proc.stdin.write(b"ping\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"ping\n"

    pod.kill_all()
    assert proc.wait() == -signal.SIGKILL
    pod.destroy()
    assert not (UNIFIED / unified / "pod-u").exists()
    pod.destroy()


def test_a_limit_without_its_controller_is_a_clear_error(unified):
    offered = (UNIFIED / "cgroup.controllers").read_text().split()
    if "memory" in offered:
        pytest.skip("the memory controller is on the unified tree here")
    mgr = new_manager(parent=unified, name_path="pod-x", driver="v2", root=UNIFIED)
    mgr.create()
    with pytest.raises(CgroupError) as info:
        mgr.set(Resources(memory_limit_bytes=32 << 20))
    assert "memory.max" in str(info.value) and "controller" in str(info.value)
    mgr.destroy()
    assert not os.path.exists(UNIFIED / unified / "pod-x")
