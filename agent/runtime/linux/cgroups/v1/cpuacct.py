"""v1 `cpuacct` controller: CPU time used by the cgroup and its descendants."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.linux.cgroups.fs import read_int

NAME = "cpuacct"


def usage_seconds(*, path: Path) -> float:
    return read_int(path / "cpuacct.usage") / 1e9   # the file counts nanoseconds
