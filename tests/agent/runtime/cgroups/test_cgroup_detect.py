"""Driver detection and v1 mount discovery from mountinfo (no root needed)."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.linux.cgroups import CgroupV1Manager, detect_driver
from agent.runtime.linux.cgroups.detect import v1_mount_points

UNIFIED_HOST = ("35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - "
                "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n")
# systemd-style hybrid host: cpu and cpuacct co-mounted, a cgroup2 tree beside.
HYBRID_HOST = (
    "30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n"
    "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd\n"
    "33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory\n"
    "35 30 0:32 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids\n"
    "36 30 0:33 / /sys/fs/cgroup/freezer rw,nosuid shared:16 - cgroup cgroup rw,freezer\n")


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_detect_driver(tmp_path):
    assert detect_driver(mountinfo=_file(tmp_path, "v2", UNIFIED_HOST)) == "v2"
    assert detect_driver(mountinfo=_file(tmp_path, "v1", HYBRID_HOST)) == "v1"


def test_v1_mount_points_handle_co_mounted_controllers(tmp_path):
    mounts = v1_mount_points(mountinfo=_file(tmp_path, "v1", HYBRID_HOST))
    assert mounts["cpu"] == mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert "name=systemd" not in mounts and "rw" not in mounts


def test_co_mounted_hierarchy_is_written_once(tmp_path):
    mounts = {c: tmp_path / c for c in ("memory", "pids", "freezer")}
    mounts["cpu"] = mounts["cpuacct"] = tmp_path / "cpu,cpuacct"
    mgr = CgroupV1Manager(parent="skiff", name_path="pod-1", mounts=mounts)
    mgr.create()
    assert mgr.paths()["cpu"] == mgr.paths()["cpuacct"] == tmp_path / "cpu,cpuacct" / "skiff" / "pod-1"
    mgr.add_process(4242)
    for directory in ("memory", "pids", "freezer", "cpu,cpuacct"):
        assert (tmp_path / directory / "skiff" / "pod-1" / "cgroup.procs").read_text() == "4242"
    assert mgr.procs() == [4242]
