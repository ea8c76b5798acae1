"""v1 `cpu` controller: requests → cpu.shares, limits → CFS quota over a 100 ms period."""
from __future__ import annotations

import errno
from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.convert import CFS_PERIOD_US, DEFAULT_SHARES, cpu_quota, cpu_shares
from agent.runtime.linux.cgroups.fs import CgroupError, read_file, read_keyed, write_file

NAME = "cpu"


def apply(*, path: Path, resources: Resources) -> None:
    shares = DEFAULT_SHARES if resources.cpu_request_millis is None else cpu_shares(
        millis=resources.cpu_request_millis)
    write_file(path / "cpu.shares", str(shares))
    # The period first: the kernel checks the quota against the period in force.
    write_file(path / "cpu.cfs_period_us", str(CFS_PERIOD_US))
    # -1 lifts the limit. v1 refuses a child quota above its parent's (EINVAL),
    # so the runtime sets the pod cgroup (the sum) before its containers.
    quota = -1 if resources.cpu_limit_millis is None else cpu_quota(millis=resources.cpu_limit_millis)
    try:
        write_file(path / "cpu.cfs_quota_us", str(quota))
    except CgroupError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise CgroupError(errno.EINVAL, f"{exc.strerror} (a v1 CPU limit may not exceed its parent's: "
                                        f"{path.parent}/cpu.cfs_quota_us is "
                                        f"{read_file(path.parent / 'cpu.cfs_quota_us')})") from exc


def throttling(*, path: Path) -> tuple[int, int, float]:
    """cpu.stat: (CFS periods, periods throttled, seconds throttled), as cAdvisor
    reports container_cpu_cfs_*; zeros where the file is missing."""
    stat = path / "cpu.stat"
    if not stat.exists():
        return 0, 0, 0.0
    values = read_keyed(stat)
    return values.get("nr_periods", 0), values.get("nr_throttled", 0), values.get("throttled_time", 0) / 1e9
