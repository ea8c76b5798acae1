"""pods/portforward over WebSockets (`portforward.k8s.io` / `v4.channel.k8s.io`
framing, as the official Python client speaks it), onto AgentProxy.port_forward:
one TCP connection into the pod per requested port (`?ports=80&ports=8080`).

Port i has two channels: 2i data (both ways) and 2i+1 error (server →
client). The server's first message on each is [channel, port low byte,
port high byte]; after that a message is [channel] + payload. When every
port's connection has ended the WebSocket is closed.

kubectl 1.32 first asks for SPDY tunnelled in a WebSocket
(`SPDY/3.1+portforward.k8s.io`) and then for plain SPDY; Skiff speaks
neither, so both get a 400 at once naming what to use instead: kubectl
stops with that message rather than hang.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import WSMsgType, web

from controlplane.api.proxy import AgentProxy
from controlplane.rest.resources import Target
from controlplane.rest.status import bad_request, from_exception
from proto.skiff.v1 import api_pb2

log = logging.getLogger(__name__)
PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
NOT_SERVED = ("pods/portforward is served over plain WebSockets (v4.channel.k8s.io) only, not SPDY: "
              "use `skiff port-forward`, or the Python client's portforward")


def _ports(values: list[str]) -> list[int]:
    ports = []
    for value in values:
        for part in value.split(","):
            try:
                port = int(part)
            except ValueError:
                raise bad_request(f"invalid port {part!r}") from None
            if not 0 < port < 65536:
                raise bad_request(f"port {port} must be between 1 and 65535")
            ports.append(port)
    if not ports:
        raise bad_request("at least one port must be given (?ports=N)")
    return ports


async def portforward_ws(request: web.Request, t: Target, *, proxy: AgentProxy) -> web.StreamResponse:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if request.headers.get("Upgrade", "").lower() != "websocket" or not any(p in PROTOCOLS for p in offered):
        raise bad_request(NOT_SERVED)
    ports = _ports(request.query.getall("ports", []))
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]
    send_lock = asyncio.Lock()

    async def send(channel: int, payload: bytes) -> None:
        async with send_lock:
            if not ws.closed:
                await ws.send_bytes(bytes([channel]) + payload)

    async def forward(index: int, port: int) -> None:
        async def inputs() -> AsyncIterator[api_pb2.PortForwardInput]:
            yield api_pb2.PortForwardInput(start=api_pb2.PortForwardStart(
                namespace=t.namespace or "default", name=t.name, port=port))
            while (data := await queues[index].get()) is not None:
                yield api_pb2.PortForwardInput(data=data)
            yield api_pb2.PortForwardInput(close_write=True)

        try:
            async for out in proxy.port_forward(inputs()):
                await send(2 * index, out.data)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - the client hears it on the port's error channel
            await send(2 * index + 1, from_exception(exc, resource="pods", name=t.name).message.encode())

    async def read_client() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and len(msg.data) > 1 and msg.data[0] % 2 == 0:
                index = msg.data[0] // 2
                if index < len(queues):
                    await queues[index].put(bytes(msg.data[1:]))
        for q in queues:
            await q.put(None)

    for index, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await send(2 * index, prefix)
        await send(2 * index + 1, prefix)
    reader = asyncio.create_task(read_client())
    try:
        await asyncio.gather(*(forward(i, p) for i, p in enumerate(ports)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    if not ws.closed:
        try:
            await ws.close()
        except ConnectionResetError:
            pass
    return ws
