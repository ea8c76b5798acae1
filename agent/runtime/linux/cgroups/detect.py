"""Which cgroup driver this host needs, and where the v1 hierarchies are mounted.

Read from /proc/self/mountinfo rather than assumed: hosts differ in whether
cpu and cpuacct share one mount ("cpu,cpuacct") and in where things live.
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_ROOT = Path("/sys/fs/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")


def _mounts(*, mountinfo: Path) -> list[tuple[Path, str, list[str]]]:
    """(mount point, fs type, super options) for every mount."""
    out = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        # Mount points escape spaces etc. as octal; cgroup mounts never have them.
        out.append((Path(fields[4]), fields[sep + 1], fields[sep + 3].split(",") if len(fields) > sep + 3 else []))
    return out


def detect_driver(*, root: Path = DEFAULT_ROOT, mountinfo: Path = MOUNTINFO) -> str:
    """"v2" when root itself is a cgroup2 mount (a unified-only host), else "v1"
    (legacy or hybrid: a cgroup2 tree beside v1 controllers counts as v1,
    because memory, cpu and pids are bound to the v1 hierarchies there)."""
    for point, fstype, _ in _mounts(mountinfo=mountinfo):
        if point == root and fstype == "cgroup2":
            return "v2"
    return "v1"


def v1_mount_points(*, mountinfo: Path = MOUNTINFO) -> dict[str, Path]:
    """Controller name → mount point of its v1 hierarchy (first mount wins)."""
    found: dict[str, Path] = {}
    for point, fstype, options in _mounts(mountinfo=mountinfo):
        if fstype != "cgroup":
            continue
        for option in options:
            if option not in ("rw", "ro") and "=" not in option:
                found.setdefault(option, point)
    return found
