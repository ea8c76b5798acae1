"""pods/exec and pods/attach over WebSockets, with Kubernetes' channel protocol
(`v5.channel.k8s.io`, and v4 without the close signal), onto the same
AgentProxy.exec/attach streams the gRPC `Exec` and `Attach` calls use.

Every WebSocket binary message starts with its channel byte:

    0 stdin (client -> server)     1 stdout     2 stderr
    3 error: one Status JSON at the end (Success, or NonZeroExitCode with the code as a cause)
    4 resize: {"Width": w, "Height": h}       255 close: [255, channel] (v5: stdin's EOF)

A request that is not a WebSocket upgrade (kubectl's SPDY fallback) gets a
400 at once, so no client waits on a protocol Skiff does not speak.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

from aiohttp import WSMsgType, web

from controlplane.api.proxy import AgentProxy
from controlplane.rest import codec
from controlplane.rest.resources import Target
from controlplane.rest.status import ApiError, bad_request, from_exception
from proto.skiff.v1 import api_pb2

log = logging.getLogger(__name__)
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
FIRST_RESIZE_WAIT_SECONDS = 2.0   # a tty client that sends no size starts at the agent's default


def _status(code: int | None, command: list[str], failure: ApiError | None = None) -> bytes:
    if failure is not None:
        body: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": failure.message,
                                "reason": failure.reason, "code": failure.code}
    elif code:
        body = {"metadata": {}, "status": "Failure",
                "message": f"command terminated with non-zero exit code: error executing command "
                           f"{command}, exit code {code}", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    else:
        body = {"metadata": {}, "status": "Success"}
    return bytes([ERROR]) + json.dumps(body).encode()


def _input(msg: Any) -> api_pb2.ExecInput | None:
    """The ExecInput a client's WebSocket message stands for (None: nothing to pass on)."""
    if msg.type != WSMsgType.BINARY or not msg.data:
        return None
    channel, payload = msg.data[0], msg.data[1:]
    if channel == STDIN:
        return api_pb2.ExecInput(stdin=payload)
    if channel == RESIZE:
        try:
            size = json.loads(payload)
            return api_pb2.ExecInput(resize=api_pb2.TerminalSize(rows=int(size.get("Height", 0)),
                                                                 cols=int(size.get("Width", 0))))
        except (ValueError, TypeError, AttributeError):
            return None
    if channel == CLOSE and payload[:1] == bytes([STDIN]):
        return api_pb2.ExecInput(close_stdin=True)
    return None


async def _first_input(ws: web.WebSocketResponse) -> api_pb2.ExecInput | None:
    """The client's first message, if it sends one soon (kubectl's initial resize)."""
    try:
        async with asyncio.timeout(FIRST_RESIZE_WAIT_SECONDS):
            while True:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return None
                if (message := _input(msg)) is not None:
                    return message
    except TimeoutError:
        return None


async def exec_ws(request: web.Request, t: Target, *, proxy: AgentProxy, attach: bool = False
                  ) -> web.StreamResponse:
    """pods/exec, or with attach pods/attach (the container's own stdio: no command)."""
    verb = "attach" if attach else "exec"
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request(f"pods/{verb} is served over WebSockets (v5.channel.k8s.io) only; this client asked "
                          f"for another protocol (SPDY): use kubectl 1.30 or later, or `skiff {verb}`")
    q = request.query
    command = q.getall("command", [])
    if not command and not attach:
        raise bad_request("you must specify at least 1 command")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if not any(p in PROTOCOLS for p in offered):
        raise bad_request(f"unsupported stream protocol(s) {offered}: Skiff speaks {', '.join(PROTOCOLS)}")
    tty = codec.flag(q, "tty")
    start = api_pb2.ExecStart(namespace=t.namespace or "default", name=t.name, container=q.get("container", ""),
                              command=command, stdin=codec.flag(q, "stdin"), tty=tty)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    inputs: asyncio.Queue[api_pb2.ExecInput | None] = asyncio.Queue()
    if tty:
        # kubectl sends the terminal's size first thing: the command starts at that size (a
        # shell reads it once at start), as ExecStart.size lets it.
        first = await _first_input(ws)
        if first is not None and first.WhichOneof("input") == "resize":
            start.size.CopyFrom(first.resize)
        elif first is not None:
            inputs.put_nowait(first)

    async def requests() -> AsyncIterator[api_pb2.ExecInput]:
        yield api_pb2.ExecInput(start=start)
        while (message := await inputs.get()) is not None:
            yield message

    async def read_client() -> None:
        async for msg in ws:
            message = _input(msg)
            if message is not None:
                await inputs.put(message)
        await inputs.put(None)

    reader = asyncio.create_task(read_client())
    code: int | None = None
    failure: ApiError | None = None
    try:
        async for out in (proxy.attach if attach else proxy.exec)(requests()):
            which = out.WhichOneof("output")
            if which == "stdout":
                await ws.send_bytes(bytes([STDOUT]) + out.stdout)
            elif which == "stderr":
                await ws.send_bytes(bytes([STDERR]) + out.stderr)
            elif which == "exit_code" and not attach:   # an attach ends with its program: not a failure
                code = out.exit_code
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the client on the error channel
        failure = from_exception(exc, resource="pods", name=t.name)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    if not ws.closed:
        try:
            await ws.send_bytes(_status(code, command, failure))
            await ws.close()
        except ConnectionResetError:
            pass
    return ws
