"""The cgroup v2 driver: one unified tree, the driver for v2-only hosts.

A cgroup is the directory <root>/<parent>/<name_path>. Controllers reach a
directory only if every ancestor lists them in cgroup.subtree_control, so
create() walks down from the root and enables "+cpu +memory +pids" (those the
root offers) at each ancestor before making the next level. v2's "no
internal processes" rule is why only ancestors get controllers enabled: the
leaf (a container) is where the processes go.

`root` may point at a plain directory shaped like cgroup2 (tests assert
exactly what is written there); the real tree is /sys/fs/cgroup on a v2 host.
"""
from __future__ import annotations

from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.base import CgroupStats
from agent.runtime.linux.cgroups.fs import (kill_pids, make_dir, read_file, read_pids, remove_dir, subtree_dirs,
                                            try_rmdir, wait_until_empty, write_file)
from agent.runtime.linux.cgroups.v2 import cpu, freezer, memory, pids

WANTED_CONTROLLERS = (cpu.NAME, memory.NAME, pids.NAME)


class CgroupV2Manager:
    driver = "v2"

    def __init__(self, *, parent: str, name_path: str, root: Path) -> None:
        self.parent = parent
        self.name_path = name_path
        self.root = root
        self.path = root / parent / name_path

    def __repr__(self) -> str:
        return f"CgroupV2Manager({self.path})"

    def paths(self) -> dict[str, Path]:
        return {"unified": self.path}

    def create(self) -> None:
        offered = read_file(self.root / "cgroup.controllers").split()
        wanted = [c for c in WANTED_CONTROLLERS if c in offered]
        level = self.root
        for part in Path(self.parent, self.name_path).parts:
            self._enable(path=level, controllers=wanted)
            level = level / part
            make_dir(level)

    @staticmethod
    def _enable(*, path: Path, controllers: list[str]) -> None:
        control = path / "cgroup.subtree_control"
        enabled = read_file(control).split() if control.exists() else []
        missing = [c for c in controllers if c not in enabled]
        if missing:
            write_file(control, " ".join(f"+{c}" for c in missing))

    def set(self, resources: Resources) -> None:
        cpu.apply(path=self.path, resources=resources)
        memory.apply(path=self.path, resources=resources)
        pids.apply(path=self.path, resources=resources)

    def add_process(self, pid: int) -> None:
        write_file(self.path / "cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        found: set[int] = set()
        for d in subtree_dirs(self.path):
            found.update(read_pids(d / "cgroup.procs"))
        return sorted(found)

    def stats(self) -> CgroupStats:
        count = pids.current(path=self.path)
        periods, throttled, throttled_seconds = cpu.throttling(path=self.path)
        mem = memory.details(path=self.path)
        return CgroupStats(
            cpu_usage_seconds=cpu.usage_seconds(path=self.path),
            memory_working_set_bytes=mem.working_set,
            pids=len(self.procs()) if count is None else count,
            memory=mem, cpu_periods=periods,
            cpu_throttled_periods=throttled, cpu_throttled_seconds=throttled_seconds)

    def oom_killed(self) -> bool:
        return memory.oom_killed(path=self.path)

    def freeze(self) -> None:
        freezer.freeze(path=self.path)

    def thaw(self) -> None:
        freezer.thaw(path=self.path)

    def kill_all(self) -> None:
        if not self.procs():
            return
        kill = self.path / "cgroup.kill"
        if kill.exists():
            # Linux ≥ 5.14: the kernel kills the whole subtree atomically.
            write_file(kill, "1")
        else:
            # Older kernels: freeze so nothing forks meanwhile (v2 frozen tasks
            # do die of SIGKILL, but the thaw keeps the cgroup usable).
            self.freeze()
            try:
                kill_pids(self.procs())
            finally:
                self.thaw()
        wait_until_empty(procs=self.procs, what=repr(self))

    def destroy(self) -> None:
        if try_rmdir(self.path):
            return
        if self.procs():
            self.kill_all()
        for d in subtree_dirs(self.path):
            remove_dir(d)
