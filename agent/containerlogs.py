"""Container logs: rotation, as the kubelet's container log manager does it,
and reading a log as one stream across its rotated files.

A container's stdout and stderr are appended straight to its log file
(`<pods>/<ns>_<name>_<uid>/<container>/<restart>.log`): the program holds the
fd, so nothing can "reopen" it the way CRI runtimes do after a rename. So a
file over `max_size` (containerLogMaxSize, 10 Mi) is rotated in place:

1. its first N bytes (N: the size rounded down to whole filesystem blocks) are
   copied to `<restart>.log.<YYYYmmdd-HHMMSS.ffffff>`;
2. those N bytes are cut from the head of the live file with
   fallocate(FALLOC_FL_COLLAPSE_RANGE), atomic against the program's
   O_APPEND writes, so not a byte is lost; where the filesystem cannot
   collapse (tmpfs), the file is copied whole and truncated (what logrotate's
   copytruncate does: what is written in between is lost);
3. rotated files beyond `max_files - 1` (containerLogMaxFiles, 5, counts the
   live one) are deleted, oldest first.

Readers (`LogStream`) go through this module too: they read the rotated
files, oldest first, then the live one, and a rotation made while they read
or follow is replayed to them (rotation and reads of a file hold one lock,
and each rotation records how many bytes it moved), so `skiff logs` sees the
whole retained log and `-f` follows across a rotation without a gap or a
repeat.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 10 * 1024 * 1024   # kubelet's containerLogMaxSize (10Mi)
DEFAULT_MAX_FILES = 5                 # kubelet's containerLogMaxFiles
DEFAULT_CHECK_SECONDS = 10.0          # kubelet's containerLogMonitorInterval
CHUNK = 64 * 1024
_BUDGET = 1024 * 1024                 # bytes read from the live file per turn under the lock
_KEEP_ROTATIONS = 64                  # rotations remembered per file, for readers that fall behind
_FALLOC_FL_COLLAPSE_RANGE = 0x08


@dataclass
class _History:
    """What happened to one live log file: rotations in order (bytes moved, where to)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    count: int = 0                     # rotations ever made
    recent: deque[tuple[int, Path]] = field(default_factory=lambda: deque(maxlen=_KEEP_ROTATIONS))


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of a live log file, oldest first."""
    try:
        return sorted(p for p in path.parent.glob(path.name + ".*") if not p.name.endswith(".tmp"))
    except OSError:
        return []


class ContainerLogManager:
    """Rotates every container log under pods_dir that has grown past max_size."""

    def __init__(self, *, pods_dir: Path, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES,
                 check_seconds: float = DEFAULT_CHECK_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if max_files < 2:
            raise ValueError("max_files must be at least 2 (the live file and one rotated)")
        self.pods_dir = Path(pods_dir)
        self.max_size = max_size
        self.max_files = max_files
        self.check_seconds = check_seconds
        self.clock = clock
        self._files: dict[Path, _History] = {}

    def _history(self, path: Path) -> _History:
        history = self._files.get(path)
        if history is None:
            history = self._files[path] = _History()
        return history

    async def run(self) -> None:
        """Check every check_seconds until cancelled."""
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.rotate_all()
            except Exception:  # noqa: BLE001 - a bad file must not stop rotation for the rest
                log.exception("container log rotation failed")

    async def rotate_all(self) -> None:
        live = set(self.pods_dir.glob("*/*/*.log"))
        for path in live:
            try:
                if path.stat().st_size > self.max_size:
                    await self.rotate(path)
            except FileNotFoundError:
                continue   # the pod went meanwhile
        for gone in set(self._files) - live:   # pods removed: forget their files
            if not self._files[gone].lock.locked():
                del self._files[gone]

    async def rotate(self, path: Path) -> None:
        history = self._history(path)
        async with history.lock:
            now = self.clock()
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now * 1e6) % 1000000:06d}"
            target = path.with_name(f"{path.name}.{stamp}")
            if target.exists() or (rotated := rotated_files(path)) and rotated[-1].name >= target.name:
                # A clock that stood still or went back: still after the newest, in name order.
                target = path.with_name(f"{(rotated_files(path) or [target])[-1].name}.1")
            moved = await asyncio.to_thread(_rotate_file, path, target)
            history.count += 1
            history.recent.append((moved, target))
            for old in rotated_files(path)[:-(self.max_files - 1)]:
                old.unlink(missing_ok=True)
        log.info("rotated %s: %d bytes to %s", path, moved, target.name)


def _rotate_file(path: Path, target: Path) -> int:
    """Move the head of `path` to `target`; returns the bytes moved (see the module docstring)."""
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        block = st.st_blksize or 4096
        n = st.st_size // block * block
        if n == st.st_size:   # the range to collapse must end before EOF
            n -= block
        collapsed = False
        if n > 0:
            with open(tmp, "wb") as out:
                _copy_range(fd, out.fileno(), n)
            collapsed = _collapse(fd, n)
        if not collapsed:   # cannot cut the head in place: copy all, then truncate
            n = os.fstat(fd).st_size
            with open(tmp, "wb") as out:
                _copy_range(fd, out.fileno(), n)
            os.ftruncate(fd, 0)
        os.replace(tmp, target)
        return n
    finally:
        os.close(fd)
        if tmp.exists():
            tmp.unlink(missing_ok=True)


def _copy_range(src: int, dst: int, n: int) -> None:
    offset = 0
    while offset < n:
        data = os.pread(src, min(CHUNK * 16, n - offset), offset)
        if not data:
            break
        os.write(dst, data)
        offset += len(data)


_libc: ctypes.CDLL | None = None


def _collapse(fd: int, n: int) -> bool:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.fallocate(fd, _FALLOC_FL_COLLAPSE_RANGE, ctypes.c_long(0), ctypes.c_long(n)) == 0:
        return True
    err = ctypes.get_errno()
    if err not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
        raise OSError(err, f"fallocate(FALLOC_FL_COLLAPSE_RANGE): {os.strerror(err)}")
    return False


class LogStream:
    """One container log read as a single stream: rotated files, then the
    live file, with rotations made meanwhile replayed (see the module docstring)."""

    def __init__(self, manager: ContainerLogManager | None, path: Path) -> None:
        self.manager = manager
        self.path = path
        self._history = manager._history(path) if manager is not None else _History()
        self._seen = self._history.count
        self._offset = 0   # in the live file

    async def read(self, *, follow: Callable[[], Awaitable[bool] | bool] | None = None, tail_lines: int = 0,
                   poll_seconds: float = 0.2, from_end: bool = False) -> AsyncIterator[bytes]:
        """The log's bytes in order. With `follow`, keep going until follow()
        says the writer has ended (then drain what is left). `from_end`: only
        what is written from the first step of the iteration on (attach)."""
        async with self._history.lock:
            rotated = rotated_files(self.path)
            self._seen = self._history.count
            if from_end:
                self._offset = _size(self.path)
                rotated, data = [], b""
            elif tail_lines > 0:
                data, self._offset = await asyncio.to_thread(_tail, [*rotated, self.path], tail_lines)
                rotated = []
            else:
                data = b""
        if data:
            yield data
        for older in rotated:
            offset = 0
            while chunk := _pread(older, offset, CHUNK):
                offset += len(chunk)
                yield chunk
        while True:
            async with self._history.lock:
                moved = self._catch_up()
                fresh = _pread(self.path, self._offset, _BUDGET)
                self._offset += len(fresh)
            for chunk in (*moved, fresh):
                for i in range(0, len(chunk), CHUNK):
                    yield chunk[i:i + CHUNK]
            if len(fresh) == _BUDGET:
                continue   # more is there already
            if follow is None:
                return
            done = follow()
            if asyncio.iscoroutine(done):
                done = await done
            if done:
                follow = None   # one more pass drains what the last moments wrote
                continue
            await asyncio.sleep(poll_seconds)

    def _catch_up(self) -> list[bytes]:
        """Under the lock: replay the rotations made since we last looked
        (what they moved that we had not read yet, from the rotated file)."""
        missed, self._seen = self._history.count - self._seen, self._history.count
        if missed <= 0:
            return []
        if missed > len(self._history.recent):   # fell too far behind: go on from the live file's start
            self._offset = 0
            return []
        out = []
        for moved, target in list(self._history.recent)[-missed:]:
            if self._offset < moved:
                out.append(_pread(target, self._offset, moved - self._offset))
                self._offset = 0
            else:
                self._offset -= moved
        return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _pread(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)
    except FileNotFoundError:
        return b""


def _tail(paths: list[Path], lines: int) -> tuple[bytes, int]:
    """The last `lines` lines across `paths` (in order), and the live file's
    (the last path's) size as read: where following goes on."""
    keep: deque[bytes] = deque(maxlen=lines)
    end = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                partial = keep.pop() if keep and not keep[-1].endswith(b"\n") else b""
                first = True
                for line in f:
                    if first and partial:
                        line, first = partial + line, False
                    first = False
                    keep.append(line)
                if first and partial:
                    keep.append(partial)
                end = f.tell()
        except FileNotFoundError:
            end = 0
    return b"".join(keep), end
