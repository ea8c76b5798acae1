"""v1 `memory` controller: the limit, swap held at zero, working set, OOM kills.

Swap is kept at zero (Kubernetes' default) by setting memory+swap
(memory.memsw.limit_in_bytes, present when swap accounting is on) equal to
the memory limit. The kernel insists memsw >= memory at every moment, so
which file is written first depends on whether the limit goes up or down.
"""
from __future__ import annotations

from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.base import MemoryDetails
from agent.runtime.linux.cgroups.fs import read_int, read_keyed, subtree_dirs, write_file

NAME = "memory"
UNLIMITED = -1


def apply(*, path: Path, resources: Resources) -> None:
    limit = resources.memory_limit_bytes
    if limit is not None and limit <= 0:
        raise ValueError(f"memory limit {limit} must be positive")
    new = UNLIMITED if limit is None else limit
    memory = path / "memory.limit_in_bytes"
    memsw = path / "memory.memsw.limit_in_bytes"
    if not memsw.exists():
        write_file(memory, str(new))
        return
    raising = new == UNLIMITED or new > read_int(memory)
    if raising:
        write_file(memsw, str(new))
        write_file(memory, str(new))
    else:
        write_file(memory, str(new))
        write_file(memsw, str(new))


def oom_killed(*, path: Path) -> bool:
    """memory.oom_control counts OOM kills (Linux ≥ 4.13), but on v1 only in
    the victim's own cgroup, so the subtree is summed: a pod sees the kills
    in its containers, as on v2. Older kernels only say how often the limit
    was hit (memory.failcnt), which is the best there is."""
    for d in subtree_dirs(path):
        control = read_keyed(d / "memory.oom_control")
        if "oom_kill" not in control:
            return read_int(path / "memory.failcnt") > 0
        if control["oom_kill"] > 0:
            return True
    return False


# The kernel's "no limit" in memory.limit_in_bytes (PAGE_COUNTER_MAX pages) is
# far above this; cAdvisor reports an unlimited container's limit as 0.
_UNLIMITED_ABOVE = 1 << 62


def details(*, path: Path) -> MemoryDetails:
    """usage, rss, cache, limit (0: none), failcnt, OOM kills (subtree) and the
    working set (usage - total_inactive_file, as cAdvisor computes it: page
    cache the kernel would drop first does not count against the container)
    for cAdvisor's container_memory_* series."""
    stat = read_keyed(path / "memory.stat")
    usage = read_int(path / "memory.usage_in_bytes")
    limit = read_int(path / "memory.limit_in_bytes")
    ooms = sum(read_keyed(d / "memory.oom_control").get("oom_kill", 0) for d in subtree_dirs(path))
    return MemoryDetails(usage=usage, rss=stat.get("total_rss", 0),
                         cache=stat.get("total_cache", 0), limit=0 if limit >= _UNLIMITED_ABOVE else limit,
                         failcnt=read_int(path / "memory.failcnt"), oom_events=ooms,
                         working_set=max(0, usage - stat.get("total_inactive_file", 0)))
