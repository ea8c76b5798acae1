"""Which cgroup driver this host needs, and where the v1 hierarchies are mounted.

Read from /proc/self/mountinfo rather than assumed: hosts differ in whether
cpu and cpuacct share one mount ("cpu,cpuacct") and in where things live.
The answer is cached per mountinfo file: cgroup hierarchies are mounted at
boot and do not move, and reading mountinfo costs ~0.4 ms here, which the
runtime would otherwise pay for every manager on the container-start path.
"""
from __future__ import annotations

import functools
from pathlib import Path

DEFAULT_ROOT = Path("/sys/fs/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")


@functools.lru_cache(maxsize=16)
def _mounts(*, mountinfo: Path) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(mount point, fs type, super options) for every mount."""
    out = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        # Mount points escape spaces etc. as octal; cgroup mounts never have them.
        out.append((fields[4], fields[sep + 1], tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()))
    return tuple(out)


def detect_driver(*, root: Path = DEFAULT_ROOT, mountinfo: Path = MOUNTINFO) -> str:
    """"v2" when root itself is a cgroup2 mount (a unified-only host), else "v1"
    (legacy or hybrid: a cgroup2 tree beside v1 controllers counts as v1,
    because memory, cpu and pids are bound to the v1 hierarchies there)."""
    root_text = str(root)
    for point, fstype, _ in _mounts(mountinfo=mountinfo):
        if point == root_text and fstype == "cgroup2":
            return "v2"
    return "v1"


def v1_mount_points(*, mountinfo: Path = MOUNTINFO) -> dict[str, Path]:
    """Controller name → mount point of its v1 hierarchy (first mount wins)."""
    return dict(_v1_mount_points(mountinfo=mountinfo))


@functools.lru_cache(maxsize=16)
def _v1_mount_points(*, mountinfo: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for point, fstype, options in _mounts(mountinfo=mountinfo):
        if fstype != "cgroup":
            continue
        for option in options:
            if option not in ("rw", "ro") and "=" not in option:
                found.setdefault(option, Path(point))
    return found
