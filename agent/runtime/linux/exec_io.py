"""The asyncio side of exec: pipes (or a pty) between the caller and the
command the zygote started inside the container (exec_init.py).

The status pipe carries two JSON lines from the exec's parent process: the
command's pid, then its exit code. An exec that cannot start (no such
program) is not an exception: like `docker exec`, its reason is written to
stderr and the exit code is 127 (126 when it exists but cannot run).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import signal
import struct
import termios
from typing import AsyncIterator, Awaitable, Callable

from agent.runtime.interface import ExecOutput, TerminalSize
from agent.runtime.linux import aio
from agent.runtime.linux.zygote import Zygote


def open_pty(init_pid: int) -> tuple[int, int]:
    """A pty from the container's own devpts instance (so `tty` inside names
    /dev/pts/N that exists there): its ptmx through the init's root, the
    peer opened from the master (TIOCGPTPEER) rather than by path."""
    TIOCSPTLCK, TIOCGPTPEER = 0x40045431, 0x5441
    master = os.open(f"/proc/{init_pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def set_size(master: int, size: TerminalSize) -> None:
    """The pty's window size (TIOCSWINSZ); the kernel tells the command's
    foreground process group with SIGWINCH."""
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))


async def run(*, zygote: Zygote, req: dict, tty: bool, stdin: AsyncIterator[bytes | TerminalSize] | None,
              output: ExecOutput, alive: Callable[[], bool], init_pid: int,
              size: TerminalSize | None = None) -> int:
    ours: list[int] = []      # our ends, closed at the end
    theirs: dict[str, int] = {}  # the command's ends, closed once sent
    pid: int | None = None
    try:
        if tty:
            master, slave = open_pty(init_pid)
            ours.append(master)
            if size is not None:
                set_size(master, size)   # before the command starts: it reads it once, at start
            theirs.update(stdin=slave, stdout=os.dup(slave), stderr=os.dup(slave))
            # A slave of our own until the output is drained: once the command's
            # last slave fd closes, a read of the master may answer EIO while the
            # kernel has not yet handed over the last bytes it wrote (seen as a
            # lost final line). Held open, reads block instead, and the pump's
            # quiet period after the exit collects everything.
            ours.append(os.dup(slave))
            out_fds = {"stdout": master}
            in_fd = master if stdin is not None else None
        else:
            if stdin is not None:
                in_r, in_fd = os.pipe2(os.O_CLOEXEC)
                ours.append(in_fd)
            else:
                in_r, in_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
            theirs["stdin"] = in_r
            out_fds = {}
            for name in ("stdout", "stderr"):
                r, w = os.pipe2(os.O_CLOEXEC)
                ours.append(r)
                theirs[name] = w
                out_fds[name] = r
        status_r, theirs["status"] = os.pipe2(os.O_CLOEXEC)
        err_r, theirs["err"] = os.pipe2(os.O_CLOEXEC)
        ours += [status_r, err_r]
        try:
            if not alive():
                raise ProcessLookupError("container is not running")
            reply = await zygote.request(req, theirs)
        finally:
            for fd in theirs.values():
                os.close(fd)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        exited = asyncio.Event()
        pumps = [asyncio.create_task(_pump(fd, getattr(output, name), exited, tty=tty))
                 for name, fd in out_fds.items()]
        feeder = None
        if stdin is not None and in_fd is not None:
            # Closing a pipe's write end is the command's EOF; a pty's master
            # must stay open for the output.
            if not tty:
                ours.remove(in_fd)
            feeder = asyncio.create_task(_feed(stdin, in_fd, close=not tty, pty=master if tty else None))
        lines = _lines(status_r)
        try:
            first = await lines.__anext__()
            pid = first.get("pid")
            last = await lines.__anext__()
            code = last["exit_code"]
        except StopAsyncIteration:
            code = None
        finally:
            if feeder:
                feeder.cancel()
        message = (await aio.read_all(err_r)).decode(errors="replace").strip()
        exited.set()
        await asyncio.gather(*pumps, return_exceptions=True)
        if message:
            await output.stderr((message + "\n").encode())
            if code is None or code == 127:
                return 126 if "permission denied" in message else 127
        return code if code is not None else 126
    except asyncio.CancelledError:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    finally:
        for fd in ours:
            with contextlib.suppress(OSError):
                os.close(fd)


async def _pump(fd: int, sink: Callable[[bytes], Awaitable[None]], exited: asyncio.Event, *,
                tty: bool) -> None:
    """Copy fd to sink until EOF, or, once the command has exited, until
    what is buffered is read: a background process it left behind may hold
    the pipe open for ever, and exec must still return (as it does when the
    exit code is known). A pty hands data over through a kernel work queue,
    so after the exit it gets a moment for the last bytes (run() holds a slave
    open meanwhile, so the master does not answer EIO before they arrive)."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            if exited.is_set() and not tty:
                return
            waiters = [asyncio.ensure_future(aio.readable(fd))]
            if not exited.is_set():
                waiters.append(asyncio.ensure_future(exited.wait()))
            done, pending = await asyncio.wait(waiters, timeout=0.2 if exited.is_set() else None,
                                               return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if not done:
                return   # a pty, quiet since the exit
            continue
        except OSError as e:
            if e.errno == errno.EIO:   # a pty whose last slave fd is closed
                return
            raise
        if not chunk:
            return
        await sink(chunk)


async def _feed(stdin: AsyncIterator[bytes | TerminalSize], fd: int, *, close: bool, pty: int | None) -> None:
    """Copy stdin to fd, resizing the pty (if any) as asked; when close, the
    fd is ours to close (even if cancelled)."""
    try:
        async for chunk in stdin:
            if isinstance(chunk, TerminalSize):
                if pty is not None:
                    set_size(pty, chunk)
                continue
            await aio.write_all(fd, chunk)
    except OSError:
        pass  # the command stopped reading
    finally:
        if close:
            os.close(fd)


async def _lines(fd: int) -> AsyncIterator[dict]:
    os.set_blocking(fd, False)
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)
        chunk = await aio.read_chunk(fd)
        if not chunk:
            return
        buf += chunk
