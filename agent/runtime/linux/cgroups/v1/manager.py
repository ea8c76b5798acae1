"""The cgroup v1 driver: one directory per controller hierarchy.

Used on legacy and hybrid hosts (the development machines here). A cgroup
lives at <mount of ctrl>/<parent>/<name_path> in each of the memory, cpu,
cpuacct, pids and freezer hierarchies; a co-mounted pair ("cpu,cpuacct")
shares one directory and is written once.

Skiff's cgroups hang off each hierarchy's root, not off the agent's own
cgroup: the agent may itself sit in a limited memory cgroup (here
/process_api/<id>), and containers must neither share that limit nor vanish
with it when the agent is restarted elsewhere.
"""
from __future__ import annotations

import errno
from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.base import CgroupStats
from agent.runtime.linux.cgroups.fs import (CgroupError, kill_pids, make_dir, read_pids, remove_dir,
                                            subtree_dirs, try_rmdir, wait_until_empty, write_file)
from agent.runtime.linux.cgroups.v1 import cpu, cpuacct, freezer, memory, pids

CONTROLLERS = (memory.NAME, cpu.NAME, cpuacct.NAME, pids.NAME, freezer.NAME)


class CgroupV1Manager:
    driver = "v1"

    def __init__(self, *, parent: str, name_path: str, mounts: dict[str, Path]) -> None:
        missing = [c for c in CONTROLLERS if c not in mounts]
        if missing:
            raise CgroupError(errno.ENOENT, f"cgroup v1 hierarchies not mounted: {', '.join(missing)}")
        self.parent = parent
        self.name_path = name_path
        self._paths = {c: mounts[c] / f"{parent}/{name_path}" for c in CONTROLLERS}   # one join: pathlib is slow

    def __repr__(self) -> str:
        return f"CgroupV1Manager({self.parent}/{self.name_path})"

    def _dirs(self) -> list[Path]:
        """Distinct directories (co-mounted controllers share one)."""
        return list(dict.fromkeys(self._paths.values()))

    def paths(self) -> dict[str, Path]:
        return dict(self._paths)

    def create(self) -> None:
        for path in self._dirs():
            make_dir(path)

    def set(self, resources: Resources) -> None:
        memory.apply(path=self._paths[memory.NAME], resources=resources)
        cpu.apply(path=self._paths[cpu.NAME], resources=resources)
        pids.apply(path=self._paths[pids.NAME], resources=resources)

    def add_process(self, pid: int) -> None:
        for path in self._dirs():
            write_file(path / "cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        found: set[int] = set()
        for path in self._dirs():
            for d in subtree_dirs(path):
                found.update(read_pids(d / "cgroup.procs"))
        return sorted(found)

    def stats(self) -> CgroupStats:
        periods, throttled, throttled_seconds = cpu.throttling(path=self._paths[cpu.NAME])
        mem = memory.details(path=self._paths[memory.NAME])
        return CgroupStats(
            cpu_usage_seconds=cpuacct.usage_seconds(path=self._paths[cpuacct.NAME]),
            memory_working_set_bytes=mem.working_set,
            pids=pids.current(path=self._paths[pids.NAME]),
            memory=mem, cpu_periods=periods,
            cpu_throttled_periods=throttled, cpu_throttled_seconds=throttled_seconds)

    def oom_killed(self) -> bool:
        return memory.oom_killed(path=self._paths[memory.NAME])

    def freeze(self) -> None:
        freezer.freeze(path=self._paths[freezer.NAME])

    def thaw(self) -> None:
        freezer.thaw(path=self._paths[freezer.NAME])

    def kill_all(self) -> None:
        # Frozen first, so nothing forks between reading the pids and the
        # SIGKILLs; the kills land when the cgroup thaws. If it cannot be
        # frozen (a task stuck in the kernel, or a freezer cgroup already
        # removed by a half-done destroy) the kills are repeated until empty.
        if not self.procs():
            return
        has_freezer = self._paths[freezer.NAME].is_dir()
        if has_freezer:
            try:
                self.freeze()
            except CgroupError:
                pass
        try:
            kill_pids(self.procs())
        finally:
            if has_freezer:
                self.thaw()
        wait_until_empty(procs=self.procs, what=repr(self))

    def destroy(self) -> None:
        left = [path for path in self._dirs() if not try_rmdir(path)]
        if not left:
            return
        if self.procs():
            self.kill_all()
        for path in left:
            for d in subtree_dirs(path):
                remove_dir(d)
