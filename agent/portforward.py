"""Port forwarding into a pod: one TCP connection to 127.0.0.1:port inside the
pod's network namespace, pumped both ways against a gRPC stream.

The socket is created in the pod's namespace (setns only around socket(),
as the probes do: `prober.checks.NetnsSockets`) and connected from the
agent's loop; everything after that is ordinary asyncio. The client's
`close_write` shuts down the connection's write side (the server sees EOF
and may still answer); the stream ends when the server closes its side.
"""
from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import AsyncIterator

from agent.prober.checks import Sockets

READ_CHUNK = 32 * 1024


async def connect(sockets: Sockets, netns: Path | None, port: int) -> tuple[asyncio.StreamReader,
                                                                             asyncio.StreamWriter]:
    """Connect to 127.0.0.1:port in the namespace pinned at netns (None: the node's)."""
    sock = sockets.socket(netns, socket.AF_INET)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               inputs: AsyncIterator[bytes | None]) -> AsyncIterator[bytes]:
    """Yield what the pod's side sends while writing `inputs` to it (None: the client's EOF)."""

    async def upstream() -> None:
        async for data in inputs:
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(upstream())
    try:
        while data := await reader.read(READ_CHUNK):
            yield data
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
