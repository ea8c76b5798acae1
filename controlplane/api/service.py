"""The gRPC `Api` service: gRPC <-> Registry, and errors -> status codes.

The REST logic (defaults, validation, what an update may change, graceful
and finalized deletion, namespaces) is the kind-agnostic registry.py calling
each kind's Strategy; this module only unwraps requests, calls it, wraps the
answers and maps errors to gRPC codes as docs/architecture.md lists them (a
compacted watch revision is OUT_OF_RANGE, which the client raises as `Gone`).
Logs/Exec/Stats are passed to the pod's agent by proxy.py.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import Message

from controlplane import store as st
from controlplane.api import eviction
from controlplane.api.errors import RpcAbort, status_of
from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Admission, Registry
from controlplane.metrics import Metrics
from proto.metadata import FIELD_PATH_METADATA, ORIGIN_METADATA, RETRY_AFTER_METADATA, WARNING_METADATA
from proto.skiff.v1 import api_pb2, api_pb2_grpc
from skiff.api import kinds

log = logging.getLogger(__name__)
# The unary calls that only read: they count against the read-only in-flight limit, the rest against
# the mutating one; streams (Watch, Exec, Logs, PortForward, ...) are long-running and count against none.
READ_ONLY_METHODS = frozenset({"Get", "List", "Stats"})


MAX_MESSAGE_CHARS = 2048
"""Error messages are cut to this: they travel in gRPC's trailing metadata, whose
8 KiB limit a message echoing a 100 KB name overflowed (RESOURCE_EXHAUSTED)."""


def _to_abort(exc: Exception) -> RpcAbort:
    abort = status_of(exc)
    if abort is None:
        log.exception("internal error")
        return RpcAbort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    return abort


async def _abort(context: grpc.aio.ServicerContext, abort: RpcAbort) -> None:
    metadata = [(ORIGIN_METADATA, "apiserver")]  # tells clients the server answered (vs. unreachable)
    if abort.field_path:
        metadata.append((FIELD_PATH_METADATA, _truncated(abort.field_path, 512)))
    if abort.retry_after:   # HTTP's Retry-After, which the client honours
        metadata.append((RETRY_AFTER_METADATA, str(abort.retry_after)))
    context.set_trailing_metadata(tuple(metadata))
    await context.abort(abort.code, _truncated(abort.message, MAX_MESSAGE_CHARS))


def _truncated(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def unary(method: Callable[..., Awaitable[Message]]) -> Callable[..., Awaitable[Message]]:
    """Map errors to status codes and count the call in the metrics."""
    name = method.__name__

    @functools.wraps(method)
    async def handler(self: "ApiService", request: Any, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if self.inflight is None:
                return await method(self, request, context)
            with self.inflight.hold(mutating=name not in READ_ONLY_METHODS):
                return await method(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
                raise
            abort = _to_abort(exc)
            code = abort.code
            await _abort(context, abort)
            raise  # not reached: abort raises
        finally:
            self.metrics.count_request(name, _resource(request), code.name, time.perf_counter() - started)
    return handler


_ENVELOPE_FIELDS = {f.name: f.number for f in api_pb2.Object.DESCRIPTOR.fields}


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: its key (number, wire type 2), length, bytes."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _resource(request: Any) -> str:
    """The resource a request is about, for the metrics' `resource` label: a
    registered kind's plural, never the caller's text."""
    try:
        if hasattr(request, "object"):
            return kinds.kind_of(kinds.unwrap(request.object)).resource
        name = request.key.kind if hasattr(request, "key") else getattr(request, "kind", "")
        if isinstance(request, (api_pb2.BindRequest, api_pb2.EvictRequest)):
            return "pods"
        if isinstance(request, api_pb2.StatsRequest):
            return "nodes"
        return _kind(name).resource if name else ""
    except Exception:  # noqa: BLE001 - unknown kind, empty envelope: counted without a resource
        return ""


def _warn(context: Any, obj: Message) -> None:
    """The kind's warnings about a written object, as trailing metadata
    `skiff-warning` (one entry each; Kubernetes sends `Warning` headers)."""
    warnings = kinds.kind_of(obj).strategy.warnings(obj)
    if warnings:
        context.set_trailing_metadata(tuple((WARNING_METADATA, w.encode("ascii", "replace").decode())
                                            for w in warnings))


def _object(envelope: api_pb2.Object) -> Message:
    try:
        return kinds.unwrap(envelope)
    except ValueError as exc:
        raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc), field_path="object") from None


def _kind(name: str) -> kinds.Kind:
    try:
        return kinds.kind_named(name)
    except kinds.UnknownKind:
        return kinds.kind_for_resource(name)


class ApiService(api_pb2_grpc.ApiServicer):
    def __init__(self, *, store: st.Store, metrics: Metrics, proxy: AgentProxy | None = None,
                 admission: Admission = Admission()) -> None:
        self.store = store
        self.registry = Registry(store=store, admission=admission)
        self.metrics = metrics
        self.proxy = proxy or AgentProxy(store=store)
        self.guard: Any = None   # secure mode's controlplane.auth.Guard (set by ApiServer); None: all allowed
        self.inflight: Any = None   # controlplane.api.inflight.InflightLimits (set by ApiServer); None: unlimited
        # serviceaccounts/token (controlplane/serviceaccounts/tokenrequest.py); None: no signing key
        self.tokens: Any = None

    # ------------------------------------------------------------ writes

    @unary
    async def Apply(self, request: api_pb2.ApplyRequest, context: Any) -> api_pb2.ApplyResponse:
        obj, result = await self.registry.apply(_object(request.object), dry_run=request.dry_run)
        _warn(context, obj)
        return api_pb2.ApplyResponse(object=kinds.wrap(obj), result=result)

    @unary
    async def Create(self, request: api_pb2.CreateRequest, context: Any) -> api_pb2.Object:
        stored = await self.registry.create(_object(request.object))
        _warn(context, stored)
        return kinds.wrap(stored)

    @unary
    async def Update(self, request: api_pb2.UpdateRequest, context: Any) -> api_pb2.Object:
        stored = await self.registry.update(_object(request.object))
        _warn(context, stored)
        return kinds.wrap(stored)

    @unary
    async def UpdateStatus(self, request: api_pb2.UpdateRequest, context: Any) -> api_pb2.Object:
        return kinds.wrap(await self.registry.update_status(_object(request.object)))

    @unary
    async def Delete(self, request: api_pb2.DeleteRequest, context: Any) -> api_pb2.Object:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        return kinds.wrap(await self.registry.delete(
            _kind(request.key.kind), request.key.namespace, request.key.name, grace_period_seconds=grace,
            precondition_uid=request.precondition_uid, propagation_policy=request.propagation_policy))

    @unary
    async def Bind(self, request: api_pb2.BindRequest, context: Any) -> api_pb2.Object:
        return kinds.wrap(await self.registry.bind(request.namespace, request.name, request.node_name,
                                                   resource_version=request.resource_version))

    @unary
    async def Evict(self, request: api_pb2.EvictRequest, context: Any) -> api_pb2.Object:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        return kinds.wrap(await eviction.evict(self.registry, request.namespace, request.name,
                                               grace_period_seconds=grace, precondition_uid=request.precondition_uid,
                                               dry_run=request.dry_run))

    @unary
    async def CreateToken(self, request: Any, context: Any) -> Any:
        """serviceaccounts/NAME/token (`skiff create token`): a signed token for the ServiceAccount."""
        if self.tokens is None:
            raise RpcAbort(grpc.StatusCode.FAILED_PRECONDITION,
                           "this API server issues no ServiceAccount tokens (no --service-account-signing-key-file)")
        return await self.tokens.create(request.namespace or "default", request.name, request.token_request)

    @unary
    async def AccessReview(self, request: Any, context: Any) -> Any:
        """`skiff auth can-i`: the authorizer's answer for the caller, or for `request.user`
        (the guard has checked the caller may impersonate); always yes on an insecure server."""
        from controlplane.auth import Attributes, Identity
        from proto.skiff.v1 import rbac_pb2
        if self.guard is None:
            return rbac_pb2.AccessReviewResponse(allowed=True, user=request.user)
        who = Identity(request.user, tuple(request.groups)) if request.user else \
            self.guard.authenticator.grpc(context)
        attributes = Attributes(verb=request.verb, resource=request.resource, subresource=request.subresource,
                                namespace=request.namespace, name=request.name, api_group=request.api_group)
        return rbac_pb2.AccessReviewResponse(allowed=await self.guard.authorizer.allowed(who, attributes),
                                             user=who.user)

    # ------------------------------------------------------------ reads

    @unary
    async def Get(self, request: api_pb2.GetRequest, context: Any) -> api_pb2.Object:
        return kinds.wrap(await self.registry.get(_kind(request.key.kind), request.key.namespace, request.key.name,
                                                  resource_version=request.resource_version))

    @unary
    async def List(self, request: api_pb2.ListRequest, context: Any) -> bytes:
        token = getattr(request, "continue")
        next_token = ""
        if request.limit or token or request.resource_version or request.resource_version_match:
            items, revision, next_token = await self.registry.list_chunk(
                _kind(request.kind), request.namespace, label_selector=request.label_selector,
                field_selector=request.field_selector, resource_version=request.resource_version,
                resource_version_match=request.resource_version_match, limit=request.limit, token=token)
        else:
            items, revision = await self.registry.list(_kind(request.kind), request.namespace,
                                                       label_selector=request.label_selector,
                                                       field_selector=request.field_selector)
        # The ObjectList written as its wire format around each object's bytes, which the watch
        # cache keeps once made: no object is copied or serialized again for a LIST (10 000 pods:
        # putting them into a reply message and serializing it was most of the call; bench/
        # api_latency.py, docs/benchmarks.md). The server's serializer passes bytes through.
        out = bytearray()
        for obj in items:
            envelope = _length_delimited(_ENVELOPE_FIELDS[kinds.kind_of(obj).envelope_field],
                                         self.registry.serialized(obj))
            out += _length_delimited(1, envelope)     # ObjectList.items = 1
        out += _length_delimited(2, revision.encode())   # ObjectList.resource_version = 2
        if next_token:
            out += _length_delimited(3, next_token.encode())   # ObjectList.continue = 3
        return bytes(out)

    async def Watch(self, request: api_pb2.WatchRequest, context: Any) -> AsyncIterator[api_pb2.WatchEvent]:
        started_code = grpc.StatusCode.OK
        kind_name = "unknown"   # a metric label: never the caller's text
        try:
            kind = _kind(request.kind)
            kind_name = kind.name
            async for item in self.registry.watch(
                    kind, request.namespace, label_selector=request.label_selector,
                    field_selector=request.field_selector, resource_version=request.resource_version,
                    bookmarks=request.allow_watch_bookmarks):
                type_, obj, revision = item
                if obj is None:   # BOOKMARK: the revision only, no object
                    yield api_pb2.WatchEvent(type=type_, resource_version=revision)
                    continue
                self.metrics.watches.labels(kind.name, type_).inc()
                # Serialized once per event, the bytes shared by every watcher of the watch cache's
                # event (the server's serializer passes bytes through: skiff/grpcdecoding.py).
                encoded = item.encoded.get(("grpc", type_))
                if encoded is None:
                    event = api_pb2.WatchEvent(type=type_, resource_version=revision)
                    getattr(event.object, kinds.kind_of(obj).envelope_field).CopyFrom(obj)   # one copy, as List
                    encoded = item.encoded[("grpc", type_)] = event.SerializeToString()
                yield encoded
        except Exception as exc:
            if type(exc).__name__ == "AbortError":
                raise
            abort = _to_abort(exc)
            started_code = abort.code
            # A watch that ends in an error is what used to go unseen: count and log it.
            self.metrics.watch_failures.labels(kind_name, abort.code.name).inc()
            log.warning("watch of %s ended: %s: %s", kind_name, abort.code.name, abort.message[:500])
            await _abort(context, abort)
        finally:
            self.metrics.count_request("Watch", "" if kind_name == "unknown" else kind.resource,
                                       started_code.name, None)

    # ------------------------------------------------------------ proxied

    async def Logs(self, request: api_pb2.LogsRequest, context: Any) -> AsyncIterator[api_pb2.LogChunk]:
        async for chunk in self._proxied("Logs", self.proxy.logs(request), context):
            yield chunk

    async def Exec(self, request_iterator: Any, context: Any) -> AsyncIterator[api_pb2.ExecOutput]:
        async for out in self._proxied("Exec", self.proxy.exec(request_iterator), context):
            yield out

    async def Attach(self, request_iterator: Any, context: Any) -> AsyncIterator[api_pb2.ExecOutput]:
        async for out in self._proxied("Attach", self.proxy.attach(request_iterator), context):
            yield out

    async def PortForward(self, request_iterator: Any, context: Any) -> AsyncIterator[api_pb2.PortForwardOutput]:
        async for out in self._proxied("PortForward", self.proxy.port_forward(aiter(request_iterator)), context):
            yield out

    async def _proxied(self, method: str, stream: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """A stream from the pod's agent, passed through; errors mapped and counted as for any call."""
        code = grpc.StatusCode.OK
        try:
            async for item in stream:
                yield item
        except Exception as exc:
            if type(exc).__name__ == "AbortError":
                raise
            abort = _to_abort(exc)
            code = abort.code
            await _abort(context, abort)
        finally:
            self.metrics.count_request(method, "pods", code.name, None)

    @unary
    async def Stats(self, request: api_pb2.StatsRequest, context: Any) -> api_pb2.NodeStats:
        return await self.proxy.stats(request)
