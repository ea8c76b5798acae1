"""pods/portforward over WebSockets (`portforward.k8s.io` / `v4.channel.k8s.io`
framing, as the official Python client speaks it), onto AgentProxy.port_forward:
one TCP connection into the pod per requested port (`?ports=80&ports=8080`).

Port i has two channels: 2i data (both ways) and 2i+1 error (server →
client). The server's first message on each is [channel, port low byte,
port high byte]; after that a message is [channel] + payload. When every
port's connection has ended the WebSocket is closed.

kubectl 1.32 first asks for SPDY tunnelled in a WebSocket
(`SPDY/3.1+portforward.k8s.io`, client-go's tunneling dialer): that is served
by portforward_spdy (controlplane/rest/spdy.py is the framing). Per local
connection kubectl opens two SPDY streams with the same `requestid` and
`port` headers: `streamtype: error` (which it half-closes at once) and then
`streamtype: data`; each gets a SYN_REPLY, the data stream becomes one TCP
connection into the pod (AgentProxy.port_forward), and when that ends the
data stream and then the error stream are finished (FIN) — the error stream
carrying the failure's message first, if any. A client reset (RST_STREAM)
of the data stream closes the connection into the pod. Plain SPDY (an HTTP
`Upgrade: SPDY/3.1`, kubectl's fallback) still gets a 400 naming what to use.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import WSMsgType, web

from controlplane.api.proxy import AgentProxy
from controlplane.rest import spdy
from controlplane.rest.resources import Target
from controlplane.rest.status import ApiError, bad_request, from_exception
from proto.skiff.v1 import api_pb2

log = logging.getLogger(__name__)
PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
NOT_SERVED = ("pods/portforward is served over WebSockets (SPDY/3.1+portforward.k8s.io as kubectl 1.30+ asks, "
              "or v4.channel.k8s.io), not plain SPDY: use kubectl 1.30 or later, `skiff port-forward`, or the "
              "Python client's portforward")


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
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    if websocket and SPDY_TUNNEL in offered:
        return await portforward_spdy(request, t, proxy=proxy)
    if not websocket or not any(p in PROTOCOLS for p in offered):
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
                if out.data:
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

    async def stop_reading() -> None:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return await _to_the_end(ws, asyncio.gather(*(forward(i, p) for i, p in enumerate(ports))), stop_reading)


async def _to_the_end(ws: web.WebSocketResponse, session: Awaitable[object],
                      cleanup: Callable[[], Awaitable[None]]) -> web.WebSocketResponse:
    """Run a forwarding session over `ws` to its end (the client going away is an end, not an
    error), then `cleanup()`, and close the WebSocket unless the client has."""
    try:
        await session
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await cleanup()
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await ws.close()
    return ws


class _SpdyForward:
    """One tunnelled SPDY connection: its streams, paired by requestid."""

    def __init__(self, ws: web.WebSocketResponse, t: Target, proxy: AgentProxy) -> None:
        self.ws, self.t, self.proxy = ws, t, proxy
        self.codec = spdy.Codec()
        self.lock = asyncio.Lock()
        self.error_streams: dict[str, int] = {}           # requestid -> the error stream's id
        self.inputs: dict[int, asyncio.Queue[bytes | None]] = {}   # data stream id -> bytes for the pod
        self.tasks: dict[int, asyncio.Task] = {}

    async def write(self, *frames: bytes) -> None:
        async with self.lock:
            for frame in frames:
                if self.ws.closed:
                    return
                await self.ws.send_bytes(frame)

    async def serve(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                frames = self.codec.feed(msg.data)
            except spdy.ProtocolError as exc:
                log.info("port-forward to %s/%s: %s", self.t.namespace, self.t.name, exc)
                await self.write(self.codec.goaway(0, 1))
                return
            for frame in frames:
                if not await self.handle(frame):
                    return

    async def handle(self, frame: spdy.Frame) -> bool:
        """False when the connection is over (GOAWAY)."""
        if not frame.control:
            queue = self.inputs.get(frame.stream_id)
            if queue is not None:
                if frame.data:
                    await queue.put(frame.data)
                if frame.fin:
                    await queue.put(None)
                    self.inputs.pop(frame.stream_id, None)
            return True
        if frame.type == spdy.PING:
            await self.write(self.codec.ping(frame.ping_id))
        elif frame.type == spdy.GOAWAY:
            return False
        elif frame.type == spdy.RST_STREAM:
            task = self.tasks.pop(frame.stream_id, None)
            if task is not None:
                task.cancel()
            self.inputs.pop(frame.stream_id, None)
        elif frame.type == spdy.SYN_STREAM:
            await self.open(frame)
        return True

    async def open(self, frame: spdy.Frame) -> None:
        def header(name: str) -> str:
            return (frame.headers.get(name) or [""])[0]

        kind, request_id, port_text = header("streamtype"), header("requestid"), header("port")
        if kind == "error":
            self.error_streams[request_id] = frame.stream_id
            await self.write(self.codec.syn_reply(frame.stream_id))
            return
        if kind != "data":
            await self.write(self.codec.rst_stream(frame.stream_id, spdy.RST_REFUSED_STREAM))
            return
        await self.write(self.codec.syn_reply(frame.stream_id))
        error_stream = self.error_streams.pop(request_id, 0)
        try:
            port = _ports([port_text])[0]
        except ApiError as exc:
            await self.fail(frame.stream_id, error_stream, exc.message)
            return
        self.inputs[frame.stream_id] = asyncio.Queue()
        self.tasks[frame.stream_id] = asyncio.create_task(self.forward(frame.stream_id, error_stream, port))

    async def fail(self, data_stream: int, error_stream: int, message: str) -> None:
        frames = self.codec.data(data_stream, fin=True)
        if error_stream:
            frames += self.codec.data(error_stream, message.encode(), fin=True)
        await self.write(*frames)

    async def forward(self, stream_id: int, error_stream: int, port: int) -> None:
        queue = self.inputs[stream_id]

        async def inputs() -> AsyncIterator[api_pb2.PortForwardInput]:
            yield api_pb2.PortForwardInput(start=api_pb2.PortForwardStart(
                namespace=self.t.namespace or "default", name=self.t.name, port=port))
            while (data := await queue.get()) is not None:
                yield api_pb2.PortForwardInput(data=data)
            yield api_pb2.PortForwardInput(close_write=True)

        message = ""
        try:
            async for out in self.proxy.port_forward(inputs()):
                if out.data:
                    await self.write(*self.codec.data(stream_id, out.data))
        except asyncio.CancelledError:
            # The client reset the data stream: its error stream is still owed an end.
            if error_stream:
                await asyncio.shield(self.write(*self.codec.data(error_stream, fin=True)))
            raise
        except ConnectionResetError:
            return
        except Exception as exc:  # noqa: BLE001 - the client hears it on the error stream
            message = (f"error forwarding port {port} to pod {self.t.namespace or 'default'}/{self.t.name}: "
                       f"{from_exception(exc, resource='pods', name=self.t.name).message}")
        finally:
            self.tasks.pop(stream_id, None)
            self.inputs.pop(stream_id, None)
        await self.fail(stream_id, error_stream, message)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def portforward_spdy(request: web.Request, t: Target, *, proxy: AgentProxy) -> web.StreamResponse:
    """kubectl's port-forward: SPDY/3.1 in a WebSocket (see the module's doc)."""
    ws = web.WebSocketResponse(protocols=(SPDY_TUNNEL,), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    session = _SpdyForward(ws, t, proxy)
    return await _to_the_end(ws, session.serve(), session.close)
