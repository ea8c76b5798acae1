"""pods/log, and a clear refusal for the streams not served yet.

`GET .../pods/<name>/log` is passed to the pod's agent by the same AgentProxy
the gRPC `Logs` call uses (container, follow, tailLines, previous; Skiff's
agent has no sinceSeconds, timestamps or limitBytes yet, so they are
ignored). The first chunk is awaited before the answer starts, so a missing
pod or an unscheduled one is a Status (404, 400), as in Kubernetes.

attach is not served yet (exec is streams.py, portforward portforward.py): it
answers 400 at once with a message saying so, so kubectl prints an error
instead of hanging.
"""
from __future__ import annotations

from aiohttp import web

from controlplane.api.proxy import AgentProxy
from controlplane.rest import codec
from controlplane.rest.resources import Target
from controlplane.rest.status import ApiError
from proto.skiff.v1 import api_pb2

STREAMS_NOT_SERVED = ("attach",)


async def logs(request: web.Request, t: Target, *, proxy: AgentProxy) -> web.StreamResponse:
    q = request.query
    stream = proxy.logs(api_pb2.LogsRequest(
        namespace=t.namespace, name=t.name, container=q.get("container", ""), follow=codec.flag(q, "follow"),
        tail_lines=max(codec.integer(q, "tailLines") or 0, 0), previous=codec.flag(q, "previous")))
    try:
        first = await anext(stream, None)
    except BaseException:
        await stream.aclose()
        raise
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(first.data)
            async for chunk in stream:
                await response.write(chunk.data)
    except ConnectionResetError:
        pass
    finally:
        await stream.aclose()
    try:
        await response.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return response


def stream_not_served(subresource: str) -> ApiError:
    return ApiError(400, "BadRequest",
                    f"pods/{subresource} is not served by Skiff's Kubernetes API yet (it needs the WebSocket "
                    f"channel protocol); use `skiff exec` for a command in a container")
