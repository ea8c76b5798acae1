"""Reading and writing cgroup interface files, with errors that name the file.

Every driver and controller module goes through these few functions, so a
failure always says which file, which value and what the kernel answered.
Writes use one write(2) call (the kernel parses each write on its own) and
open with O_CREAT so that the v2 driver can be tested against a plain
directory tree shaped like cgroup2; on a real cgroup filesystem a missing
interface file cannot be created and the error says the controller is
probably not enabled there.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Callable


class CgroupError(OSError):
    """A cgroup operation failed; str() names the file or directory and the errno text."""


def write_file(path: Path, value: str) -> None:
    """Write value to one interface file in a single write(2)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        # On cgroupfs O_CREAT cannot create, so a failed open of an absent file is a missing controller.
        hint = "" if path.exists() else " (no such interface file: is the controller enabled in this cgroup?)"
        raise CgroupError(exc.errno, f"open {path} for writing {value!r}: {exc.strerror}{hint}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(exc.errno, f"write {value!r} to {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def read_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise CgroupError(exc.errno, f"read {path}: {exc.strerror}") from exc


def read_int(path: Path) -> int:
    text = read_file(path)
    try:
        return int(text)
    except ValueError:
        raise CgroupError(errno.EINVAL, f"read {path}: expected an integer, got {text!r}") from None


def read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file ("key value" per line: memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def read_pids(path: Path) -> list[int]:
    """The pids in one cgroup.procs file; [] if the cgroup is already gone."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CgroupError(exc.errno, f"read {path}: {exc.strerror}") from exc
    return [int(p) for p in text.split()]


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CgroupError(exc.errno, f"mkdir {path}: {exc.strerror}") from exc


def subtree_dirs(path: Path) -> list[Path]:
    """path and every cgroup directory below it, deepest first (the rmdir order)."""
    if not path.is_dir():
        return []
    found = [dirpath for dirpath, _, _ in os.walk(path)]
    found.sort(key=lambda d: d.count("/"), reverse=True)
    return [Path(d) for d in found]


def try_rmdir(path: Path) -> bool:
    """The fast path of destroy: an empty leaf cgroup goes in one rmdir.
    False when it has tasks or children (EBUSY) or is not a cgroup (ENOTEMPTY)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise CgroupError(exc.errno, f"rmdir {path}: {exc.strerror}") from exc
    return True


def remove_dir(path: Path, *, attempts: int = 50) -> None:
    """rmdir a cgroup; tolerate it being gone. EBUSY is retried briefly because a
    killed task may still be leaving the cgroup when we get here."""
    for attempt in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == attempts - 1:
                raise CgroupError(exc.errno, f"rmdir {path}: {exc.strerror}") from exc
            time.sleep(0.01 * (attempt + 1))


def check_relative(*, what: str, value: str) -> None:
    """Names come from pod uids and container ids; refuse anything that could
    leave the hierarchy (absolute paths, '..')."""
    if not value or value.startswith("/") or any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"cgroup {what} {value!r} must be a relative path without '.', '..' or empty parts")


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until_empty(*, procs: Callable[[], list[int]], what: str, seconds: float = 10.0) -> None:
    """Poll until procs() is empty after a SIGKILL, SIGKILLing whatever is
    still listed each round (a task forked while we were killing, when the
    cgroup could not be frozen). Tasks leave the cgroup as they exit (zombies
    included), so this is quick; a task stuck in uninterruptible sleep is
    reported rather than waited on forever."""
    deadline = time.monotonic() + seconds
    delay = 0.001
    while True:
        left = procs()
        if not left:
            return
        if time.monotonic() > deadline:
            raise CgroupError(errno.EBUSY, f"{what}: pids {left} still present {seconds:.0f}s after SIGKILL")
        kill_pids(left)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
