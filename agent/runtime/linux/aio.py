"""asyncio over raw fds: pipes, ptys and pidfds, without threads.

The runtime's async methods wait on kernel objects the zygote's children
hold the other end of: an error pipe (EOF = exec succeeded), a status pipe
(exec's pid and exit code), output pipes, and a pidfd (readable once the
process has exited, whoever its parent is — the container init is not our
child, so waitpid is not an option).
"""
from __future__ import annotations

import asyncio
import errno
import os
from typing import Awaitable, Callable

from agent.runtime.linux import syscalls as sc


async def readable(fd: int) -> None:
    """Return once fd is readable (or at EOF / hang-up)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)
    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)
    loop.add_writer(fd, ready)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def read_chunk(fd: int) -> bytes:
    """One read from a non-blocking fd; b"" at EOF (a pty's EIO counts as EOF:
    it is what the master gets once the last slave fd is closed)."""
    while True:
        await readable(fd)
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise


async def read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while chunk := await read_chunk(fd):
        chunks.append(chunk)
    return b"".join(chunks)


async def pump(fd: int, sink: Callable[[bytes], Awaitable[None]]) -> None:
    """Forward everything read from fd to sink until EOF."""
    os.set_blocking(fd, False)
    while chunk := await read_chunk(fd):
        await sink(chunk)


async def write_all(fd: int, data: bytes) -> None:
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await writable(fd)
            continue
        view = view[n:]


async def wait_pidfd(pid: int, *, alive: Callable[[], bool]) -> None:
    """Return once pid has exited. alive() re-checks the recorded start time
    after pidfd_open, so a pid already reused by another process does not
    make us wait on a stranger."""
    try:
        pidfd = sc.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not alive():
            return
        await readable(pidfd)
    finally:
        os.close(pidfd)
