"""v1 `freezer` controller: stop every task of a cgroup at once.

Freezing is what makes kill_all race-free on v1 (a frozen task cannot fork a
new one between our reading cgroup.procs and sending SIGKILL). The state goes
THAWED → FREEZING → FROZEN; writing FROZEN again while FREEZING nudges tasks
that were busy in the kernel, as runc does.
"""
from __future__ import annotations

import errno
import time
from pathlib import Path

from agent.runtime.linux.cgroups.fs import CgroupError, read_file, write_file

NAME = "freezer"
_WAIT_SECONDS = 10.0


def freeze(*, path: Path) -> None:
    _set_state(path=path, state="FROZEN")


def thaw(*, path: Path) -> None:
    _set_state(path=path, state="THAWED")


def _set_state(*, path: Path, state: str) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    delay = 0.001
    while True:
        write_file(path / "freezer.state", state)
        current = read_file(path / "freezer.state")
        if current == state:
            return
        if time.monotonic() > deadline:
            raise CgroupError(errno.ETIMEDOUT, f"{path}/freezer.state: still {current} after "
                                               f"{_WAIT_SECONDS:.0f}s of asking for {state}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
