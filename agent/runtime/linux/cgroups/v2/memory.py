"""v2 `memory` controller: memory.max, swap held at zero, oom.group, working set, OOM kills."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.base import MemoryDetails
from agent.runtime.linux.cgroups.fs import read_int, read_keyed, write_file

NAME = "memory"


def apply(*, path: Path, resources: Resources) -> None:
    limit = resources.memory_limit_bytes
    if limit is not None and limit <= 0:
        raise ValueError(f"memory limit {limit} must be positive")
    if limit is not None or (path / "memory.max").exists():
        write_file(path / "memory.max", "max" if limit is None else str(limit))
    # Kubernetes' NoSwap: no swap for containers, whatever the host has.
    if (path / "memory.swap.max").exists():
        write_file(path / "memory.swap.max", "0")
    # An OOM kills the whole cgroup, not one arbitrary task of it (the
    # kubelet does the same), so a container never limps on half-killed.
    if (path / "memory.oom.group").exists():
        write_file(path / "memory.oom.group", "1")


def oom_killed(*, path: Path) -> bool:
    """memory.events counts OOM kills in this cgroup and below."""
    events = path / "memory.events"
    return events.exists() and read_keyed(events).get("oom_kill", 0) > 0


def details(*, path: Path) -> MemoryDetails:
    """usage, rss (anon), cache (file), limit (0: none), times the limit was
    hit, OOM kills and the working set (memory.current - inactive_file, as
    cAdvisor computes it), for cAdvisor's container_memory_* series; all 0
    without the controller."""
    current = path / "memory.current"
    if not current.exists():
        return MemoryDetails()
    stat = read_keyed(path / "memory.stat")
    raw = (path / "memory.max").read_text().strip() if (path / "memory.max").exists() else "max"
    events = read_keyed(path / "memory.events") if (path / "memory.events").exists() else {}
    usage = read_int(current)
    return MemoryDetails(usage=usage, rss=stat.get("anon", 0), cache=stat.get("file", 0),
                         limit=0 if raw == "max" else int(raw), failcnt=events.get("max", 0),
                         oom_events=events.get("oom_kill", 0),
                         working_set=max(0, usage - stat.get("inactive_file", 0)))
