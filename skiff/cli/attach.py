"""`skiff attach [-i] POD [-c C]`: the container's own output from now on, and
with -i this terminal's stdin to its program (a `stdin: true` container).
Ends when the program exits, with its exit code; Ctrl-C detaches and leaves
it running."""
from __future__ import annotations

import argparse
import sys

from skiff.cli._common import add_namespace_flags, call_api, namespace_of
from skiff.cli.exec import _stdin_chunks
from skiff.client import ApiClient


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "attach", help="attach to a running container's stdio",
        description="Print what the container's program writes from now on; with -i pass stdin to it "
                    "(the container must have stdin: true). Exits with the program's exit code.")
    p.add_argument("pod", metavar="POD", help="POD or pod/POD")
    p.add_argument("-c", "--container", default="", metavar="C", help="the container (default: the first)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the container's program")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pod = args.pod.removeprefix("pod/").removeprefix("pods/")

    async def attach(client: ApiClient) -> int:
        exit_code = 0
        stdin = _stdin_chunks() if args.stdin else None
        async for stream, data in client.attach(pod, namespace_of(args), container=args.container, stdin=stdin):
            if stream == "exit_code":
                exit_code = int(data)
                break
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return exit_code

    try:
        return call_api(args, attach)
    except KeyboardInterrupt:
        return 0
