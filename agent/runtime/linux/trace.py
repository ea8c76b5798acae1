"""Opt-in timing marks for profiling container start (bench/container_start.py
--trace). Off unless SKIFF_RUNTIME_TRACE names a file; then every mark()
appends "<monotonic seconds> <pid> <label>" to it, from whichever process
(agent, zygote, container init) reaches it. The file stays open once opened,
so marks made after pivot_root still land on the host. Costs one comparison
when off."""
from __future__ import annotations

import os
import time

_PATH = os.environ.get("SKIFF_RUNTIME_TRACE")
_fd: int | None = None


def mark(label: str) -> None:
    global _fd
    if _PATH is None:
        return
    try:
        if _fd is None:
            _fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(_fd, f"{time.monotonic():.6f} {os.getpid()} {label}\n".encode())
    except OSError:
        pass  # closed by a child that closes every fd: marks are best effort


def fd() -> int:
    """The trace file's fd (-1 when tracing is off), for code that closes all others."""
    return -1 if _fd is None else _fd
