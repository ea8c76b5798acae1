"""`skiff exec [-i] [-t] POD [-c C] -- CMD...`: run a command in a running
container, through the control plane to the pod's agent.

stdin is read by a daemon thread (a blocking read must not hold up the exit
when the remote command ends first); stdout and stderr are written as they
arrive; the exit code is the remote command's. With -t the local terminal is
put in raw mode, so keys like Ctrl-C reach the remote side, and restored
after; the remote terminal gets the local one's size, and follows it when
the window is resized (SIGWINCH).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from typing import AsyncIterator, Iterator

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.client import ApiClient


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "exec", help="run a command in a running container",
        description="Run CMD inside a running container of POD (its namespaces, cgroup and root "
                    "filesystem). Exits with the command's exit code.",
        usage="skiff exec [-h] [-i] [-t] [-c C] [-n NS] POD -- CMD [ARG...]")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container", default="", metavar="C", help="the container (default: the first)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal (raw mode locally)")
    add_namespace_flags(p)
    p.set_defaults(func=run, takes_command=True)


def run(args: argparse.Namespace) -> int:
    command = args.trailing
    if not command:
        raise CliError("give the command after --: skiff exec POD -- CMD [ARG...]")

    async def execute(client: ApiClient) -> int:
        exit_code = 1
        size = _terminal_size() if args.tty else None
        stdin = _stdin_chunks(resizes=args.tty and size is not None) if args.stdin else None
        with _raw_terminal(enabled=args.tty):
            async for stream, data in client.exec(args.pod, command, namespace_of(args),
                                                  container=args.container, stdin=stdin, tty=args.tty,
                                                  size=size):
                if stream == "exit_code":
                    exit_code = int(data)
                    break
                out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
                out.write(data)
                out.flush()
        return exit_code

    return call_api(args, execute)


def _terminal_size() -> tuple[int, int] | None:
    """(rows, cols) of the terminal we write to, if it is one."""
    for stream in (sys.stdout, sys.stdin):
        try:
            cols, rows = os.get_terminal_size(stream.fileno())
            return rows, cols
        except (OSError, ValueError):
            continue
    return None


async def _stdin_chunks(*, resizes: bool = False) -> AsyncIterator[bytes | tuple[int, int]]:
    """stdin as chunks, read by a daemon thread; ends at EOF. With resizes,
    the terminal's new (rows, cols) after each SIGWINCH, in between."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | tuple[int, int]] = asyncio.Queue()
    if resizes:
        def resized() -> None:
            size = _terminal_size()
            if size is not None:
                queue.put_nowait(size)
        loop.add_signal_handler(signal.SIGWINCH, resized)

    def reader() -> None:
        fd = sys.stdin.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, data)
            except RuntimeError:  # the loop is closed: the command ended first
                return
            if not data:
                return

    threading.Thread(target=reader, name="skiff-exec-stdin", daemon=True).start()
    try:
        while True:
            data = await queue.get()
            if not data:
                return
            yield data
    finally:
        if resizes:
            loop.remove_signal_handler(signal.SIGWINCH)


@contextlib.contextmanager
def _raw_terminal(*, enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
