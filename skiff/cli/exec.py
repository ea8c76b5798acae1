"""`skiff exec [-i] [-t] POD [-c C] -- CMD...`: run a command in a running
container, through the control plane to the pod's agent.

stdin is read by a daemon thread (a blocking read must not hold up the exit
when the remote command ends first); stdout and stderr are written as they
arrive; the exit code is the remote command's. With -t the local terminal is
put in raw mode, so keys like Ctrl-C reach the remote side, and restored after.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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
        stdin = _stdin_chunks() if args.stdin else None
        with _raw_terminal(enabled=args.tty):
            async for stream, data in client.exec(args.pod, command, namespace_of(args),
                                                  container=args.container, stdin=stdin, tty=args.tty):
                if stream == "exit_code":
                    exit_code = int(data)
                    break
                out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
                out.write(data)
                out.flush()
        return exit_code

    return call_api(args, execute)


async def _stdin_chunks() -> AsyncIterator[bytes]:
    """stdin as chunks, read by a daemon thread; ends at EOF."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

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
    while True:
        data = await queue.get()
        if not data:
            return
        yield data


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
