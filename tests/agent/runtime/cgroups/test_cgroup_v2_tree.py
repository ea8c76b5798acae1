"""The v2 driver against a plain directory tree shaped like cgroup2: what it writes, exactly.

A real cgroup2 filesystem creates a directory's interface files on mkdir; the
`v2_tree` fixture plays the kernel's part for the files a test needs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups import CgroupV2Manager, list_cgroups, new_manager

MiB = 1 << 20


@pytest.fixture
def v2_tree(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def _interface_files(path: Path, *names: str) -> None:
    for name in names:
        (path / name).write_text("")


def test_create_enables_controllers_in_every_ancestor(v2_tree):
    mgr = new_manager(parent="skiff", name_path="pod-1/c1", driver="v2", root=v2_tree)
    assert isinstance(mgr, CgroupV2Manager)
    mgr.create()
    for ancestor in (v2_tree, v2_tree / "skiff", v2_tree / "skiff" / "pod-1"):
        assert (ancestor / "cgroup.subtree_control").read_text() == "+cpu +memory +pids", ancestor
    leaf = v2_tree / "skiff" / "pod-1" / "c1"
    assert leaf.is_dir()
    # The leaf holds the processes, so (no internal processes) nothing is enabled below it.
    assert not (leaf / "cgroup.subtree_control").exists()
    assert mgr.paths() == {"unified": leaf}
    assert list_cgroups(parent="skiff", driver="v2", root=v2_tree) == ["pod-1"]


def test_create_enables_only_what_the_root_offers_and_is_not_repeated(v2_tree):
    (v2_tree / "cgroup.controllers").write_text("cpu pids\n")
    (v2_tree / "cgroup.subtree_control").write_text("cpu\n")     # already on at the root
    new_manager(parent="skiff", name_path="pod-2", driver="v2", root=v2_tree).create()
    assert (v2_tree / "cgroup.subtree_control").read_text() == "+pids"
    assert (v2_tree / "skiff" / "cgroup.subtree_control").read_text() == "+cpu +pids"


def test_set_writes_kubernetes_values(v2_tree):
    mgr = new_manager(parent="skiff", name_path="pod-3/c1", driver="v2", root=v2_tree)
    mgr.create()
    leaf = mgr.paths()["unified"]
    _interface_files(leaf, "memory.swap.max", "memory.oom.group")
    mgr.set(Resources(cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=32 * MiB, pids_limit=10))
    # shares 256 → weight 1 + (256-2)*9999/262142 = 10 (the kubelet's conversion)
    assert (leaf / "cpu.weight").read_text() == "10"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "memory.max").read_text() == str(32 * MiB)
    assert (leaf / "memory.swap.max").read_text() == "0"
    assert (leaf / "memory.oom.group").read_text() == "1"
    assert (leaf / "pids.max").read_text() == "10"

    mgr.set(Resources(cpu_request_millis=1000))
    assert (leaf / "cpu.weight").read_text() == "39"      # 1024 shares
    mgr.set(Resources())                                   # lifts every limit
    assert (leaf / "cpu.weight").read_text() == "100"
    assert (leaf / "cpu.max").read_text() == "max 100000"
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "pids.max").read_text() == "max"


def test_set_without_limits_touches_no_controller_file(v2_tree):
    mgr = new_manager(parent="skiff", name_path="pod-4", driver="v2", root=v2_tree)
    mgr.create()
    mgr.set(Resources())
    leaf = mgr.paths()["unified"]
    assert sorted(p.name for p in leaf.iterdir()) == []


def test_add_process_and_procs_cover_descendants(v2_tree):
    pod = new_manager(parent="skiff", name_path="pod-5", driver="v2", root=v2_tree)
    ctr = new_manager(parent="skiff", name_path="pod-5/c1", driver="v2", root=v2_tree)
    pod.create()
    ctr.create()
    ctr.add_process(4242)
    assert (ctr.paths()["unified"] / "cgroup.procs").read_text() == "4242"
    assert ctr.procs() == [4242]
    assert pod.procs() == [4242]


def test_stats_and_oom_come_from_the_v2_files(v2_tree):
    mgr = new_manager(parent="skiff", name_path="pod-6", driver="v2", root=v2_tree)
    mgr.create()
    leaf = mgr.paths()["unified"]
    (leaf / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (leaf / "memory.current").write_text(str(100 * MiB))
    (leaf / "memory.stat").write_text(f"anon {60 * MiB}\nfile {40 * MiB}\ninactive_file {30 * MiB}\n")
    (leaf / "pids.current").write_text("3\n")
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\noom_group_kill 0\n")
    stats = mgr.stats()
    assert stats.cpu_usage_seconds == 2.5
    assert stats.memory_working_set_bytes == 70 * MiB
    assert stats.pids == 3
    assert not mgr.oom_killed()
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\noom_group_kill 1\n")
    assert mgr.oom_killed()


def test_freeze_writes_cgroup_freeze_and_waits_for_the_event(v2_tree):
    mgr = new_manager(parent="skiff", name_path="pod-7", driver="v2", root=v2_tree)
    mgr.create()
    leaf = mgr.paths()["unified"]
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 1\n")   # the kernel's answer
    mgr.freeze()
    assert (leaf / "cgroup.freeze").read_text() == "1"
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    mgr.thaw()
    assert (leaf / "cgroup.freeze").read_text() == "0"

