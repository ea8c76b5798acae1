"""Node pressure: MemoryPressure, DiskPressure and PIDPressure from measurements
against kubelet's hard eviction thresholds.

Thresholds are kubelet's syntax and defaults (`--eviction-hard`):
`memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%`; a
`pid.available<N` threshold may be given (kubelet sets none by default, so
PIDPressure stays False). A signal is a quantity (`100Mi`) or a percentage of
its capacity (`10%`).

Measurements (`observe`): memory.available is the kernel's MemAvailable,
nodefs.* a statvfs of the agent's data directory (where pod volumes, logs and
writable layers live), pid.available the kernel's pid_max minus the threads
that exist. Conditions read as kubelet writes them
(`KubeletHasInsufficientMemory`, "kubelet has insufficient memory available").

Not here yet: eviction of pods under pressure and the matching node taints.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from agent import procfs
from skiff.api.quantity import parse_quantity

DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%"
SIGNALS = ("memory.available", "nodefs.available", "nodefs.inodesFree", "pid.available")
_RULE = re.compile(r"^\s*([a-zA-Z.]+)\s*<\s*([0-9.]+%|[0-9.]+[a-zA-Z]*)\s*$")


class ThresholdError(ValueError):
    """An --eviction-hard rule that is not `signal<quantity` or `signal<N%`."""


@dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None      # absolute (bytes, inodes, pids)
    percent: float | None = None     # of the signal's capacity

    def limit(self, capacity: int) -> float:
        return self.quantity if self.quantity is not None else capacity * (self.percent or 0) / 100


def parse_thresholds(text: str) -> dict[str, Threshold]:
    out: dict[str, Threshold] = {}
    for rule in filter(None, (r.strip() for r in text.split(","))):
        m = _RULE.match(rule)
        if not m or m.group(1) not in SIGNALS:
            raise ThresholdError(f"eviction threshold {rule!r}: expected SIGNAL<QUANTITY or SIGNAL<N% with a "
                                 f"signal of {', '.join(SIGNALS)}")
        signal, value = m.groups()
        if value.endswith("%"):
            out[signal] = Threshold(signal, percent=float(value[:-1]))
        else:
            out[signal] = Threshold(signal, quantity=int(parse_quantity(value)))
    return out


@dataclass(frozen=True)
class Observation:
    memory_available: int
    memory_capacity: int
    nodefs_available: int
    nodefs_capacity: int
    inodes_free: int
    inodes_total: int
    pids_available: int
    pid_max: int


def observe(data_dir: Path, *, proc: Path = Path("/proc")) -> Observation:
    mem = procfs.meminfo(proc / "meminfo")
    existing = data_dir
    while not existing.exists() and existing != existing.parent:   # not made yet: its filesystem
        existing = existing.parent
    fs = os.statvfs(existing)
    pid_max = int((proc / "sys/kernel/pid_max").read_text())
    threads = int((proc / "loadavg").read_text().split()[3].split("/")[1])
    return Observation(memory_available=procfs.memory_available(mem),
                       memory_capacity=mem.get("MemTotal", 0),
                       nodefs_available=fs.f_bavail * fs.f_frsize, nodefs_capacity=fs.f_blocks * fs.f_frsize,
                       inodes_free=fs.f_favail, inodes_total=fs.f_files,
                       pids_available=pid_max - threads, pid_max=pid_max)


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def _under(thresholds: dict[str, Threshold], signal: str, value: int, capacity: int) -> bool:
    t = thresholds.get(signal)
    return t is not None and capacity > 0 and value < t.limit(capacity)


def conditions(obs: Observation, thresholds: dict[str, Threshold]) -> list[Condition]:
    """The three pressure conditions, as kubelet words them."""
    memory = _under(thresholds, "memory.available", obs.memory_available, obs.memory_capacity)
    disk = (_under(thresholds, "nodefs.available", obs.nodefs_available, obs.nodefs_capacity)
            or _under(thresholds, "nodefs.inodesFree", obs.inodes_free, obs.inodes_total))
    pids = _under(thresholds, "pid.available", obs.pids_available, obs.pid_max)
    return [
        Condition("MemoryPressure", memory, *(("KubeletHasInsufficientMemory",
                                               "kubelet has insufficient memory available") if memory else
                                              ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"))),
        Condition("DiskPressure", disk, *(("KubeletHasDiskPressure", "kubelet has disk pressure") if disk else
                                          ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"))),
        Condition("PIDPressure", pids, *(("KubeletHasInsufficientPID", "kubelet has insufficient PID available")
                                         if pids else
                                         ("KubeletHasSufficientPID", "kubelet has sufficient PID available"))),
    ]
