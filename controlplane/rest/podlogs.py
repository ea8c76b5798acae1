"""pods/log.

`GET .../pods/<name>/log` is passed to the pod's agent by the same AgentProxy
the gRPC `Logs` call uses (container, follow, tailLines, previous; Skiff's
agent has no sinceSeconds, timestamps or limitBytes yet, so they are
ignored). The first chunk is awaited before the answer starts, so a missing
pod or an unscheduled one is a Status (404, 400), as in Kubernetes.
"""
from __future__ import annotations

from aiohttp import web

from controlplane.api.proxy import AgentProxy
from controlplane.rest import codec
from controlplane.rest.resources import Target
from proto.skiff.v1 import api_pb2

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
