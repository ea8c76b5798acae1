"""cgroups for Skiff's containers: one Manager interface, a v1 and a v2 driver.

The runtime asks for a manager per cgroup and never writes cgroup files
itself. Layout (in every v1 hierarchy, or once in the v2 tree):

    <root>/<parent>/                 parent: "skiff" (tests: "skiff-test-<random>")
        pod-<pod uid>/               the pod: limits are the sum of its containers
            <container id>/          one per container; its processes live here

    driver = detect_driver()                       # "v1" here, "v2" on unified hosts
    pod = new_manager(parent="skiff", name_path=f"pod-{uid}")
    ctr = new_manager(parent="skiff", name_path=f"pod-{uid}/{cid}")
    pod.create(); pod.set(pod_resources)           # the pod first: v1 refuses a child
    ctr.create(); ctr.set(resources)               # CPU quota above its parent's
    ctr.add_process(pid); ctr.stats(); ctr.oom_killed()
    ctr.destroy(); pod.destroy()                   # idempotent, kill what is left

Driver modules: v1/ (memory, cpu, cpuacct, pids, freezer hierarchies) and
v2/ (unified tree, controllers enabled through cgroup.subtree_control), one
small file per controller, with the millicore conversions in convert.py.
"""
from __future__ import annotations

import functools
from pathlib import Path

from agent.runtime.linux.cgroups.base import CgroupManager, CgroupStats
from agent.runtime.linux.cgroups.detect import DEFAULT_ROOT, detect_driver, v1_mount_points
from agent.runtime.linux.cgroups.fs import CgroupError, check_relative
from agent.runtime.linux.cgroups.v1 import CgroupV1Manager
from agent.runtime.linux.cgroups.v1.manager import CONTROLLERS as V1_CONTROLLERS
from agent.runtime.linux.cgroups.v2 import CgroupV2Manager

__all__ = ["CgroupError", "CgroupManager", "CgroupStats", "CgroupV1Manager", "CgroupV2Manager",
           "detect_driver", "list_cgroups", "new_manager", "remove_empty"]


def _v1_mounts(root: Path | None) -> dict[str, Path]:
    if root is None:
        return v1_mount_points()
    # A test tree: one directory per controller under root.
    return {c: root / c for c in V1_CONTROLLERS}


@functools.lru_cache(maxsize=1)
def _host_driver() -> str:
    """This host's driver: detected once (a host does not change it while
    running, and mountinfo grows with every pod's pinned namespaces)."""
    return detect_driver(root=DEFAULT_ROOT)


def new_manager(*, parent: str, name_path: str, driver: str | None = None,
                root: Path | None = None) -> CgroupManager:
    """A manager for <parent>/<name_path>; nothing is created until create().

    driver: "v1", "v2" or None (detect). root: the cgroup mount root
    (default /sys/fs/cgroup); for v1 it holds one directory per controller.
    """
    check_relative(what="parent", value=parent)
    check_relative(what="name path", value=name_path)
    if driver is None:
        driver = _host_driver() if root is None else detect_driver(root=root)
    if driver == "v1":
        return CgroupV1Manager(parent=parent, name_path=name_path, mounts=_v1_mounts(root))
    if driver == "v2":
        return CgroupV2Manager(parent=parent, name_path=name_path, root=root or DEFAULT_ROOT)
    raise ValueError(f"cgroup driver {driver!r}: expected 'v1' or 'v2'")


def list_cgroups(*, parent: str, driver: str | None = None, root: Path | None = None) -> list[str]:
    """Names of the cgroups directly under <parent> (e.g. "pod-<uid>"), in any
    hierarchy: what cleanup after a crash walks to find leftovers."""
    check_relative(what="parent", value=parent)
    if driver is None:
        driver = _host_driver() if root is None else detect_driver(root=root)
    if driver == "v2":
        bases = [(root or DEFAULT_ROOT) / parent]
    elif driver == "v1":
        mounts = _v1_mounts(root)
        bases = [mounts[c] / parent for c in V1_CONTROLLERS if c in mounts]
    else:
        raise ValueError(f"cgroup driver {driver!r}: expected 'v1' or 'v2'")
    names: set[str] = set()
    for base in bases:
        if base.is_dir():
            names.update(p.name for p in base.iterdir() if p.is_dir())
    return sorted(names)


def remove_empty(name: str, *, root: Path = DEFAULT_ROOT) -> list[str]:
    """rmdir the cgroup `name` (a parent, e.g. "skiff") in every hierarchy: each
    v1 controller's and the v2 tree beside them, or the v2 root itself on a
    unified host. The kernel refuses a cgroup that still has processes or
    children, so only an empty one goes; returns those that could not be removed."""
    if not root.is_dir():
        return []
    left = []
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        cgroup = base / name
        if cgroup.is_dir() and (cgroup / "cgroup.procs").exists():
            try:
                cgroup.rmdir()
            except OSError:
                left.append(str(cgroup))
    return left
