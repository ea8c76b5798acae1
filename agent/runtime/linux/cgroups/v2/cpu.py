"""v2 `cpu` controller: requests → cpu.weight (via shares), limits → cpu.max; usage from cpu.stat."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.convert import CFS_PERIOD_US, DEFAULT_WEIGHT, cpu_quota, cpu_shares, cpu_weight
from agent.runtime.linux.cgroups.fs import read_keyed, write_file

NAME = "cpu"


def apply(*, path: Path, resources: Resources) -> None:
    if resources.cpu_request_millis is None:
        _write_if_present(path / "cpu.weight", str(DEFAULT_WEIGHT))
    else:
        weight = cpu_weight(shares=cpu_shares(millis=resources.cpu_request_millis))
        write_file(path / "cpu.weight", str(weight))
    if resources.cpu_limit_millis is None:
        _write_if_present(path / "cpu.max", f"max {CFS_PERIOD_US}")
    else:
        write_file(path / "cpu.max", f"{cpu_quota(millis=resources.cpu_limit_millis)} {CFS_PERIOD_US}")


def usage_seconds(*, path: Path) -> float:
    # cpu.stat's usage_usec is kept by the core even without the cpu controller.
    stat = path / "cpu.stat"
    return read_keyed(stat).get("usage_usec", 0) / 1e6 if stat.exists() else 0.0


def _write_if_present(path: Path, value: str) -> None:
    """Resetting to the default is only needed where the controller is enabled."""
    if path.exists():
        write_file(path, value)


def throttling(*, path: Path) -> tuple[int, int, float]:
    """cpu.stat: (CFS periods, periods throttled, seconds throttled); zeros
    without the cpu controller (the core keeps only usage then)."""
    stat = path / "cpu.stat"
    if not stat.exists():
        return 0, 0, 0.0
    values = read_keyed(stat)
    return values.get("nr_periods", 0), values.get("nr_throttled", 0), values.get("throttled_usec", 0) / 1e6
