"""v2 freezing (a core feature there, not a controller): cgroup.freeze, and
cgroup.events' `frozen` says when every task has actually stopped."""
from __future__ import annotations

import errno
import time
from pathlib import Path

from agent.runtime.linux.cgroups.fs import CgroupError, read_keyed, write_file

_WAIT_SECONDS = 10.0


def freeze(*, path: Path) -> None:
    _set(path=path, frozen=1)


def thaw(*, path: Path) -> None:
    _set(path=path, frozen=0)


def _set(*, path: Path, frozen: int) -> None:
    write_file(path / "cgroup.freeze", str(frozen))
    deadline = time.monotonic() + _WAIT_SECONDS
    delay = 0.001
    while read_keyed(path / "cgroup.events").get("frozen", 0) != frozen:
        if time.monotonic() > deadline:
            raise CgroupError(errno.ETIMEDOUT, f"{path}/cgroup.events: frozen is not {frozen} "
                                               f"{_WAIT_SECONDS:.0f}s after writing cgroup.freeze")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
