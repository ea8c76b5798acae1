"""`skiff logs POD [-c C] [-f] [--tail N]`: a container's output, streamed from
its node's agent through the control plane."""
from __future__ import annotations

import argparse
import sys

from skiff.cli._common import add_namespace_flags, call_api, namespace_of
from skiff.client import ApiClient


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "logs", help="print a container's logs",
        description="Print the stdout and stderr of a pod's container (the first container "
                    "unless -c names one).")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container", default="", metavar="C", help="the container (default: the first)")
    add_namespace_flags(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as the container writes")
    p.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous run of a restarted container")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def logs(client: ApiClient) -> int:
        # tail_lines 0 means "all" on the wire; --tail 0 means none, as in kubectl.
        if args.tail == 0:
            return 0
        out = sys.stdout.buffer
        async for data in client.logs(args.pod, namespace_of(args), container=args.container,
                                      follow=args.follow, tail_lines=max(args.tail, 0),
                                      previous=args.previous):
            out.write(data)
            out.flush()
        return 0

    return call_api(args, logs)
