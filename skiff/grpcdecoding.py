"""Requests decoded by the service, not by gRPC: bytes that are not the
method's message (garbage, a truncated field claiming 4 GB) are answered
INVALID_ARGUMENT naming the message, where gRPC's own decoding answered
UNKNOWN "Unexpected <class 'DecodeError'>" (issue 15).

`add_servicer(add, servicer, server, service, origin=...)` registers what the
generated `add_XServicer_to_server` would, with each handler's deserializer
moved inside its behaviour. Shared by the API server (controlplane/api) and the
agent's own service (agent/server.py); `origin` is the `skiff-origin` trailer
value of the refusal (who read the request). `guard(method, request, context)`,
when given, runs before the method with its decoded request (for a stream
from the client, its first message) and aborts to refuse it: the API server's
authentication and authorization in secure mode (controlplane/api/guard.py).
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

ORIGIN_KEY = "skiff-origin"   # as controlplane/api/service.py's answers: the server read the request


class _Collected:
    """Stands in for the server to take what `add_XServicer_to_server` registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.handlers[service] = handlers


Guard = Callable[[str, Any, grpc.aio.ServicerContext], Awaitable[None]]


def add_servicer(add: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server, service: str, *,
                 origin: str = "apiserver", guard: Guard | None = None) -> None:
    collected = _Collected()
    add(servicer, collected)
    handlers = {name: _decoding(handler, origin, name, guard) for name, handler in collected.handlers[service].items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


async def _decode(deserialize: Callable[[bytes], Any], data: bytes, context: grpc.aio.ServicerContext,
                  origin: str) -> Any:
    try:
        return deserialize(data)
    except Exception as exc:   # DecodeError, or anything the bytes make the parser raise
        message = getattr(deserialize, "__self__", None)
        what = message.DESCRIPTOR.full_name if hasattr(message, "DESCRIPTOR") else "request message"
        context.set_trailing_metadata(((ORIGIN_KEY, origin),))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid {what} ({len(data)} bytes): {str(exc)[:200]}")


async def _decode_checked(deserialize: Callable[[bytes], Any], data: bytes, context: grpc.aio.ServicerContext,
                          origin: str, name: str, guard: Guard | None) -> Any:
    request = await _decode(deserialize, data, context, origin)
    if guard is not None:
        await guard(name, request, context)
    return request


def _decoding(handler: grpc.RpcMethodHandler, origin: str, name: str = "",
              guard: Guard | None = None) -> grpc.RpcMethodHandler:
    deserialize, serialize = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        behaviour = handler.unary_unary

        async def unary_unary(data: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await behaviour(await _decode_checked(deserialize, data, context, origin, name, guard), context)
        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=_bytes_or(serialize))
    if handler.unary_stream is not None:
        stream = handler.unary_stream

        async def unary_stream(data: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in stream(await _decode_checked(deserialize, data, context, origin, name, guard),
                                     context):
                yield item
        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=_bytes_or(serialize))
    if handler.stream_stream is not None:
        streams = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
                                ) -> AsyncIterator[Any]:
            first = True

            async def decoded() -> AsyncIterator[Any]:
                nonlocal first
                async for data in requests:
                    if first:
                        first = False
                        yield await _decode_checked(deserialize, data, context, origin, name, guard)
                    else:
                        yield await _decode(deserialize, data, context, origin)
            async for item in streams(decoded(), context):
                yield item
        return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serialize)
    return handler   # stream-unary: neither service has one


def _bytes_or(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """A serializer that sends a message already serialized (bytes) as it is: the API server's
    watch serializes an event once for all its watchers, its LIST writes the list around each
    object's cached bytes (controlplane/api/service.py)."""
    if serialize is None:
        return None
    return lambda message: message if isinstance(message, bytes) else serialize(message)
