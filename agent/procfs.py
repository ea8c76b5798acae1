"""Readers of the host's /proc files that several parts of the agent use."""
from __future__ import annotations

from pathlib import Path


def meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """/proc/meminfo as {field: value}, in bytes for the fields given in kB
    (the HugePages_* counts stay counts)."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def memory_available(info: dict[str, int]) -> int:
    """MemAvailable, or MemFree on kernels too old to have it."""
    return info.get("MemAvailable", info.get("MemFree", 0))
