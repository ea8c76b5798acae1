"""Resource limits for a container's process.

Set before capabilities are dropped: raising a hard limit needs
CAP_SYS_RESOURCE, which a container does not keep. When the runtime itself
lacks it (as on hosts that run the agent in a restricted sandbox), a limit is
clamped to the runtime's own hard limit instead of failing the container —
the same thing `ulimit -n` does for an unprivileged shell.
"""
from __future__ import annotations

import functools
import resource
from pathlib import Path
from typing import Mapping

# What containerd gives containers (Docker defaults to the daemon's, usually 1048576).
DEFAULT_NOFILE = (1048576, 1048576)
_NR_OPEN = Path("/proc/sys/fs/nr_open")


@functools.lru_cache(maxsize=1)
def nr_open() -> int | None:
    """fs.nr_open, read once (the zygote warms this before forking containers)."""
    try:
        return int(_NR_OPEN.read_text())
    except (OSError, ValueError):
        return None


def _resource(name: str) -> int:
    key = name.upper()
    key = key if key.startswith("RLIMIT_") else f"RLIMIT_{key}"
    value = getattr(resource, key, None)
    if not isinstance(value, int):
        raise ValueError(f"unknown rlimit {name!r}")
    return value


def apply_rlimits(*, nofile: tuple[int, int] | None = DEFAULT_NOFILE,
                  extra: Mapping[str, tuple[int, int]] | None = None) -> dict[str, tuple[int, int]]:
    """Set RLIMIT_NOFILE (and any `extra`, e.g. {"nproc": (4096, 4096)}) on the
    calling process; returns what was actually set, by name."""
    wanted: dict[str, tuple[int, int]] = {}
    if nofile is not None:
        wanted["RLIMIT_NOFILE"] = nofile
    for name, value in (extra or {}).items():
        wanted[f"RLIMIT_{name.upper().removeprefix('RLIMIT_')}"] = value
    applied: dict[str, tuple[int, int]] = {}
    for name, (soft, hard) in wanted.items():
        if soft > hard:
            raise ValueError(f"{name}: soft limit {soft} above hard limit {hard}")
        applied[name] = _set_one(name=name, which=_resource(name), soft=soft, hard=hard)
    return applied


def _set_one(*, name: str, which: int, soft: int, hard: int) -> tuple[int, int]:
    if which == resource.RLIMIT_NOFILE:
        # The kernel refuses a NOFILE hard limit above fs.nr_open even for root.
        ceiling = nr_open()
        if ceiling is not None:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
    try:
        resource.setrlimit(which, (soft, hard))
        return soft, hard
    except (ValueError, PermissionError):
        # Python reports EPERM on raising the hard limit as ValueError.
        pass
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft = min(soft, current_hard)
        hard = min(hard, current_hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError) as exc:
        raise OSError(f"setrlimit({name}, ({soft}, {hard})): {exc}") from exc
    return soft, hard
