"""The cgroup Manager interface both drivers implement, and its stats record.

Modelled on libcontainer's cgroups.Manager: the runtime holds one manager per
cgroup (one for the pod, one per container below it) and never touches
cgroup files itself. Lifecycle:

    create() ─► set(resources) ─► add_process(pid) ─► stats()/oom_killed() …
                                                  └─► freeze()/thaw()
    kill_all() ─► destroy()          (destroy() kills what is left itself)

Guarantees: create() and destroy() are idempotent; destroy() tolerates a
cgroup that is partly or wholly gone; set() is declarative (a field left None
resets the file to the kernel's default, so an update can lift a limit).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from agent.runtime.interface import Resources


class MemoryDetails(NamedTuple):
    """The memory controller's numbers behind cAdvisor's container_memory_* series."""
    usage: int = 0
    rss: int = 0            # anonymous memory
    cache: int = 0          # page cache
    limit: int = 0          # 0: no limit
    failcnt: int = 0        # times the limit was hit
    oom_events: int = 0     # OOM kills in the cgroup and below
    working_set: int = 0    # usage - inactive file pages, as cAdvisor computes it


class CgroupStats(NamedTuple):
    """What metrics and `skiff top` read. A NamedTuple so callers may unpack
    it; the first three are what every caller needs, the rest default to 0."""
    cpu_usage_seconds: float
    memory_working_set_bytes: int   # usage minus inactive file cache, as cAdvisor reports it
    pids: int
    memory: MemoryDetails = MemoryDetails()
    cpu_periods: int = 0            # CFS enforcement periods, periods throttled, time throttled
    cpu_throttled_periods: int = 0
    cpu_throttled_seconds: float = 0.0


@runtime_checkable
class CgroupManager(Protocol):
    driver: str        # "v1" or "v2"
    name_path: str     # relative to the parent, e.g. "pod-<uid>/<container-id>"

    def create(self) -> None:
        """mkdir the cgroup in every hierarchy the driver uses (idempotent)."""

    def set(self, resources: Resources) -> None:
        """Write the limits; None fields reset to the kernel's default."""

    def add_process(self, pid: int) -> None:
        """Move pid (a whole process) into this cgroup in every hierarchy."""

    def paths(self) -> dict[str, Path]:
        """Controller (v1) or "unified" (v2) → the directory; a process joins
        the cgroup by writing its pid to <dir>/cgroup.procs in each."""

    def procs(self) -> list[int]:
        """Every pid in this cgroup and its descendants, sorted."""

    def stats(self) -> CgroupStats: ...

    def oom_killed(self) -> bool:
        """True once the kernel OOM killer has killed a task in this cgroup."""

    def freeze(self) -> None:
        """Stop every task; returns once the kernel reports the cgroup frozen."""

    def thaw(self) -> None: ...

    def kill_all(self) -> None:
        """SIGKILL every task (descendants included); returns once empty."""

    def destroy(self) -> None:
        """kill_all if needed, then remove this cgroup and everything below it."""
