"""`skiff port-forward POD [LOCAL:]REMOTE...`: listen on loopback and carry
each accepted connection to REMOTE inside the pod's network namespace, one
PortForward stream per connection (control plane → the pod's agent).

Prints kubectl's `Forwarding from 127.0.0.1:LOCAL -> REMOTE` per port (a
LOCAL of 0 or `:REMOTE` picks a free port) and runs until interrupted.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
from typing import AsyncIterator

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.client import ApiClient, ApiError

log = logging.getLogger(__name__)
READ_CHUNK = 32 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "port-forward", help="forward local ports to a pod",
        description="Listen on local ports and forward each connection to a port inside POD's network "
                    "namespace. Runs until interrupted.")
    p.add_argument("pod", metavar="POD", help="POD or pod/POD")
    p.add_argument("ports", metavar="[LOCAL:]REMOTE", nargs="+")
    p.add_argument("--address", default="127.0.0.1", help="the local address to listen on (default 127.0.0.1)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def parse_ports(specs: list[str]) -> list[tuple[int, int]]:
    """[(local, remote)] from `8080`, `9000:80`, `:80` (local 0: any free port)."""
    pairs = []
    for spec in specs:
        local, sep, remote = spec.partition(":")
        if not sep:
            local = remote = spec
        try:
            pair = (int(local or 0), int(remote))
        except ValueError:
            raise CliError(f"invalid port {spec!r}: expected [LOCAL:]REMOTE") from None
        if not 0 <= pair[0] < 65536 or not 0 < pair[1] < 65536:
            raise CliError(f"invalid port {spec!r}: ports are 1-65535")
        pairs.append(pair)
    return pairs


def run(args: argparse.Namespace) -> int:
    pod = args.pod.removeprefix("pod/").removeprefix("pods/")
    pairs = parse_ports(args.ports)
    namespace = namespace_of(args)

    async def forward(client: ApiClient) -> int:
        await client.get("pods", pod, namespace)   # a missing pod fails here, not at the first connection
        servers = []
        for local, remote in pairs:
            server = await asyncio.start_server(
                lambda r, w, remote=remote: _carry(client, pod, namespace, remote, r, w),
                host=args.address, port=local)
            servers.append(server)
            bound = server.sockets[0].getsockname()[1]
            print(f"Forwarding from {args.address}:{bound} -> {remote}", flush=True)
        try:
            await asyncio.gather(*(s.serve_forever() for s in servers))
        finally:
            for s in servers:
                s.close()
        return 0

    try:
        return call_api(args, forward)
    except KeyboardInterrupt:
        return 0


async def _carry(client: ApiClient, pod: str, namespace: str, remote: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    print(f"Handling connection for {remote}", flush=True)

    async def upstream() -> AsyncIterator[bytes]:
        while data := await reader.read(READ_CHUNK):
            yield data

    try:
        async for data in client.port_forward(pod, remote, namespace, data=upstream()):
            writer.write(data)
            await writer.drain()
    except ApiError as exc:
        print(f"error: forwarding to port {remote}: {exc.message}", flush=True)
    except ConnectionError:
        pass
    finally:
        writer.close()
