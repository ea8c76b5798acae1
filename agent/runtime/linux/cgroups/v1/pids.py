"""v1 `pids` controller: a ceiling on tasks, which stops fork bombs."""
from __future__ import annotations

from pathlib import Path

from agent.runtime.interface import Resources
from agent.runtime.linux.cgroups.fs import read_int, write_file

NAME = "pids"


def apply(*, path: Path, resources: Resources) -> None:
    limit = resources.pids_limit
    if limit is not None and limit < 1:
        raise ValueError(f"pids limit {limit} must be at least 1")
    write_file(path / "pids.max", "max" if limit is None else str(limit))


def current(*, path: Path) -> int:
    return read_int(path / "pids.current")
