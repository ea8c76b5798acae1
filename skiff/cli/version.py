"""`skiff version`: the client's version and whether the control plane answers."""
from __future__ import annotations

import argparse
from importlib import metadata

from skiff.cli._common import call_api, server_address
from skiff.client import ApiClient


def client_version() -> str:
    try:
        return metadata.version("skiff")
    except metadata.PackageNotFoundError:
        return "0.1.0 (source tree)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("version", help="print the version",
                              description="Print the client version and check that the control plane answers.")
    p.add_argument("--client", action="store_true", help="only the client version; do not contact the server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"Client Version: v{client_version()}")
    if args.client:
        return 0

    async def ping(client: ApiClient) -> int:
        nodes, revision = await client.list("Node", "", timeout=10)
        print(f"Server: {server_address(args)} (store revision {revision}, {len(nodes)} node(s))")
        return 0

    return call_api(args, ping)
