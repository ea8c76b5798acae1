"""Attach to a running container's own stdio: its output from now on, read
from the log file the runtime appends it to (containerlogs.LogStream with
from_end, so a rotation meanwhile loses nothing), and its stdin, written to
the FIFO a `stdin: true` container reads (LinuxRuntime.stdin_fifo: open read-write by the program, so
writers may come and go, across agent restarts, and it never sees EOF —
Kubernetes' stdin without stdinOnce).

A tty container is not attachable yet: its output goes to the log, and no
terminal is kept for an attach to join.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import AsyncIterator

POLL_SECONDS = 0.1


async def feed_fifo(path: Path, chunks: AsyncIterator[bytes]) -> None:
    """Write chunks to the FIFO; a full pipe waits for the program to read."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    await asyncio.sleep(POLL_SECONDS)
    finally:
        os.close(fd)
