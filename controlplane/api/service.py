"""The gRPC `Api` service: the only door to the store.

Each call validates and defaults its object (objects.py), then reads and
writes through the store with compare-and-swap. Store errors become gRPC codes
as docs/architecture.md lists them (a compacted watch revision is
OUT_OF_RANGE, which the client raises as `Gone`). Logs/Exec/Stats are passed
to the pod's agent by proxy.py.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import Message

from controlplane import store as st
from controlplane.api import objects
from controlplane.api.errors import RpcAbort
from controlplane.api.proxy import AgentProxy
from controlplane.metrics import Metrics
from proto.skiff.v1 import api_pb2, api_pb2_grpc, types_pb2
from skiff.api import kinds, validation
from skiff.api.selectors import SelectorError, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)
FIELD_PATH_METADATA = "skiff-field-path"
ORIGIN_METADATA = "skiff-origin"


_STORE_CODES: dict[type[st.StoreError], grpc.StatusCode] = {
    st.NotFound: grpc.StatusCode.NOT_FOUND,
    st.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    st.Conflict: grpc.StatusCode.ABORTED,
    st.Compacted: grpc.StatusCode.OUT_OF_RANGE,
    st.Unavailable: grpc.StatusCode.UNAVAILABLE,
    st.TooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    st.InvalidRevision: grpc.StatusCode.INVALID_ARGUMENT,
    st.FutureRevision: grpc.StatusCode.OUT_OF_RANGE,   # the client lists again, as after Gone
}
MAX_MESSAGE_CHARS = 2048
"""Error messages are cut to this: they travel in gRPC's trailing metadata, whose
8 KiB limit a message echoing a 100 KB name overflowed (RESOURCE_EXHAUSTED)."""


def _to_abort(exc: Exception) -> RpcAbort:
    if isinstance(exc, RpcAbort):
        return exc
    if isinstance(exc, st.StoreError):
        return RpcAbort(_STORE_CODES.get(type(exc), grpc.StatusCode.INTERNAL), str(exc))
    if isinstance(exc, objects.Forbidden):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc), field_path=exc.field_path)
    if isinstance(exc, SelectorError):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, kinds.UnknownKind):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc), field_path="kind")
    log.exception("internal error")
    return RpcAbort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


async def _abort(context: grpc.aio.ServicerContext, abort: RpcAbort) -> None:
    metadata = [(ORIGIN_METADATA, "apiserver")]  # tells clients the server answered (vs. unreachable)
    if abort.field_path:
        metadata.append((FIELD_PATH_METADATA, _truncated(abort.field_path, 512)))
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
            return await method(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
                raise
            abort = _to_abort(exc)
            code = abort.code
            await _abort(context, abort)
            raise  # not reached: abort raises
        finally:
            self.metrics.api_requests.labels(name, code.name).inc()
            self.metrics.api_latency.labels(name).observe(time.perf_counter() - started)
    return handler


def _key_of(obj: Message) -> tuple[kinds.Kind, str, str]:
    return kinds.kind_of(obj), obj.metadata.namespace, obj.metadata.name


class ApiService(api_pb2_grpc.ApiServicer):
    def __init__(self, *, store: st.Store, metrics: Metrics, proxy: AgentProxy | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.proxy = proxy or AgentProxy(store=store)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _incoming(envelope: api_pb2.Object) -> Message:
        try:
            obj = objects.apply_defaults(kinds.unwrap(envelope))
        except ValueError as exc:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc), field_path="object") from None
        errors = validation.validate(obj)
        if errors:
            kind = kinds.kind_of(obj)
            detail = "; ".join(str(e) for e in errors)
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT,
                           f'{kind.name} "{obj.metadata.name}" is invalid: {detail}', field_path=errors[0].path)
        return obj

    @staticmethod
    def _kind(name: str) -> kinds.Kind:
        try:
            return kinds.kind_named(name)
        except kinds.UnknownKind:
            return kinds.kind_for_resource(name)

    @staticmethod
    def _namespace(kind: kinds.Kind, namespace: str) -> str:
        return (namespace or objects.DEFAULT_NAMESPACE) if kind.namespaced else ""

    # ------------------------------------------------------------ writes

    @unary
    async def Apply(self, request: api_pb2.ApplyRequest, context: Any) -> api_pb2.ApplyResponse:
        incoming = self._incoming(request.object)
        kind, ns, name = _key_of(incoming)
        for _ in range(10):  # a concurrent writer (an agent's status) only means: merge again
            try:
                existing = await self.store.get(kind, ns, name)
            except st.NotFound:
                created = objects.prepare_create(objects.apply_defaults(incoming))
                if request.dry_run:
                    return api_pb2.ApplyResponse(object=kinds.wrap(created), result="created")
                try:
                    stored = await self.store.create(created)
                except st.AlreadyExists:
                    continue
                return api_pb2.ApplyResponse(object=kinds.wrap(stored), result="created")
            merged = objects.merge_update(existing, incoming, keep_node_name=True)
            if objects.same_content(merged, existing):
                return api_pb2.ApplyResponse(object=kinds.wrap(existing), result="unchanged")
            if request.dry_run:
                return api_pb2.ApplyResponse(object=kinds.wrap(merged), result="configured")
            merged.metadata.resource_version = existing.metadata.resource_version
            try:
                stored = await self.store.update(merged)
            except (st.Conflict, st.NotFound):
                continue
            return api_pb2.ApplyResponse(object=kinds.wrap(stored), result="configured")
        raise st.Conflict(f"{kind.name} {name!r} kept changing during apply; try again")

    @unary
    async def Create(self, request: api_pb2.CreateRequest, context: Any) -> api_pb2.Object:
        obj = objects.prepare_create(self._incoming(request.object))
        return kinds.wrap(await self.store.create(obj))

    async def _replace(self, incoming: Message, build: Callable[[Message], Message]) -> Message:
        """Write build(existing) with CAS. With the caller's resourceVersion set,
        a stale one is a Conflict; without, a concurrent writer only means: read
        and build again (last writer wins on what the caller sends)."""
        kind, ns, name = _key_of(incoming)
        rv = incoming.metadata.resource_version
        for _ in range(10):
            existing = await self.store.get(kind, ns, name)
            if rv and rv != existing.metadata.resource_version:
                raise st.Conflict(f"{kind.name} {name!r} was modified (resourceVersion "
                                  f"{existing.metadata.resource_version}, request had {rv}); read it again and retry")
            updated = build(existing)
            updated.metadata.resource_version = existing.metadata.resource_version
            try:
                return await self.store.update(updated)
            except st.Conflict:
                if rv:
                    raise
        raise st.Conflict(f"{kind.name} {name!r} kept changing; try again")

    @unary
    async def Update(self, request: api_pb2.UpdateRequest, context: Any) -> api_pb2.Object:
        incoming = self._incoming(request.object)
        return kinds.wrap(await self._replace(
            incoming, lambda existing: objects.merge_update(existing, incoming, keep_node_name=False)))

    @unary
    async def UpdateStatus(self, request: api_pb2.UpdateRequest, context: Any) -> api_pb2.Object:
        incoming = objects.apply_defaults(kinds.unwrap(request.object))
        kind = kinds.kind_of(incoming)
        if "status" not in type(incoming).DESCRIPTOR.fields_by_name:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"{kind.name} has no status", field_path="status")

        def build(existing: Message) -> Message:
            updated = objects.with_status(existing, incoming)
            errors = validation.validate(updated)
            if errors:
                raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(map(str, errors)),
                               field_path=errors[0].path)
            return updated
        return kinds.wrap(await self._replace(incoming, build))

    @unary
    async def Delete(self, request: api_pb2.DeleteRequest, context: Any) -> api_pb2.Object:
        kind = self._kind(request.key.kind)
        ns, name = self._namespace(kind, request.key.namespace), request.key.name
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        while True:
            existing = await self.store.get(kind, ns, name)
            if request.precondition_uid and request.precondition_uid != existing.metadata.uid:
                raise st.Conflict(f"{kind.name} {name!r}: precondition failed: uid is "
                                  f"{existing.metadata.uid}, request had {request.precondition_uid}")
            if isinstance(existing, types_pb2.Pod) and existing.spec.node_name and grace != 0:
                marked = objects.mark_for_deletion(existing, grace)
                if marked is None:
                    return kinds.wrap(existing)
                try:
                    return kinds.wrap(await self.store.update(marked))
                except st.Conflict:
                    continue
            try:
                return kinds.wrap(await self.store.delete(kind, ns, name,
                                                          resource_version=existing.metadata.resource_version))
            except st.Conflict:
                continue

    @unary
    async def Bind(self, request: api_pb2.BindRequest, context: Any) -> api_pb2.Object:
        pod_kind = kinds.kind_named("Pod")
        ns = request.namespace or objects.DEFAULT_NAMESPACE
        if not request.node_name:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "node_name is required", field_path="target.name")
        pod = await self.store.get(pod_kind, ns, request.name)
        if request.resource_version and request.resource_version != pod.metadata.resource_version:
            raise st.Conflict(f"pod {request.name!r} was modified (resourceVersion {pod.metadata.resource_version}, "
                              f"request had {request.resource_version})")
        try:
            bound = objects.bind(pod, request.node_name)
        except objects.Forbidden as exc:  # already bound or being deleted: Kubernetes answers 409
            raise st.Conflict(str(exc)) from None
        return kinds.wrap(await self.store.update(bound))

    # ------------------------------------------------------------ reads

    @unary
    async def Get(self, request: api_pb2.GetRequest, context: Any) -> api_pb2.Object:
        kind = self._kind(request.key.kind)
        return kinds.wrap(await self.store.get(kind, self._namespace(kind, request.key.namespace), request.key.name))

    @unary
    async def List(self, request: api_pb2.ListRequest, context: Any) -> api_pb2.ObjectList:
        kind = self._kind(request.kind)
        labels = parse_label_selector(request.label_selector)
        fields = parse_field_selector(request.field_selector, kind=kind.name)
        items, revision = await self.store.list(kind, request.namespace if kind.namespaced else "")
        matching = [kinds.wrap(o) for o in items if labels.matches(o.metadata.labels) and fields.matches(o)]
        return api_pb2.ObjectList(items=matching, resource_version=str(revision))

    async def Watch(self, request: api_pb2.WatchRequest, context: Any) -> AsyncIterator[api_pb2.WatchEvent]:
        started_code = grpc.StatusCode.OK
        kind_name = "unknown"   # a metric label: never the caller's text
        try:
            kind = self._kind(request.kind)
            kind_name = kind.name
            labels = parse_label_selector(request.label_selector)
            fields = parse_field_selector(request.field_selector, kind=kind.name)
            namespace = request.namespace if kind.namespaced else ""

            def matches(obj: Message | None) -> bool:
                return obj is not None and labels.matches(obj.metadata.labels) and fields.matches(obj)

            if request.resource_version:
                try:
                    revision = int(request.resource_version)
                except ValueError:
                    raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"resource_version {request.resource_version!r} is not a number",
                                   field_path="resource_version") from None
            else:
                items, revision = await self.store.list(kind, namespace)
                for obj in items:
                    if matches(obj):
                        self.metrics.watches.labels(kind.name, "ADDED").inc()
                        yield api_pb2.WatchEvent(type="ADDED", object=kinds.wrap(obj),
                                                 resource_version=obj.metadata.resource_version)
            async for event in self.store.watch(kind, namespace, after_revision=revision):
                now, before = matches(event.obj), matches(event.prev)
                if event.type == "DELETED":
                    kind_of_event = "DELETED" if now else None
                elif now and (before or event.type == "MODIFIED" and event.prev is None):
                    kind_of_event = "MODIFIED"
                elif now:
                    kind_of_event = "ADDED"
                elif before:  # left the selector: to this watcher it is gone
                    kind_of_event = "DELETED"
                else:
                    kind_of_event = None
                if kind_of_event is None:
                    continue
                self.metrics.watches.labels(kind.name, kind_of_event).inc()
                yield api_pb2.WatchEvent(type=kind_of_event, object=kinds.wrap(event.obj),
                                         resource_version=str(event.revision))
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
            self.metrics.api_requests.labels("Watch", started_code.name).inc()

    # ------------------------------------------------------------ proxied

    async def Logs(self, request: api_pb2.LogsRequest, context: Any) -> AsyncIterator[api_pb2.LogChunk]:
        async for chunk in self._proxied("Logs", self.proxy.logs(request), context):
            yield chunk

    async def Exec(self, request_iterator: Any, context: Any) -> AsyncIterator[api_pb2.ExecOutput]:
        async for out in self._proxied("Exec", self.proxy.exec(request_iterator), context):
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
            self.metrics.api_requests.labels(method, code.name).inc()

    @unary
    async def Stats(self, request: api_pb2.StatsRequest, context: Any) -> api_pb2.NodeStats:
        return await self.proxy.stats(request)
