"""FakeApiClient: `skiff.client.ApiClient` in-process, for controller tests without etcd.

Not a second implementation of the API (httpx's MockTransport idea): it is the
control plane's own `Registry` - the same kind strategies (validation,
defaulting, what an update may change), CAS, graceful pod delete, bind and
watch filtering - over a `MemoryStore`, with the registry's errors mapped to
the exceptions ApiClient raises (NotFound, AlreadyExists, Conflict, Invalid
with field_path, Gone, Unavailable). tests/contract/ runs one suite against
both clients, so a controller test that passes here means something against the
real API over etcd.

The logs, exec and stats calls are proxied to node agents in the real API;
here they raise NotImplementedError.

    client = FakeApiClient()
    await client.create(pod)
    client.store.unavailable = "etcd is down"   # every call now raises Unavailable
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, TypeVar

import grpc
from google.protobuf.message import Message

from controlplane.api import errors, eviction
from controlplane.api.registry import Registry
from controlplane.services.hook import ServiceAllocations
from controlplane.store.memory import MemoryStore
from proto.skiff.v1 import api_pb2
from skiff import client as api
from skiff.api import kinds

T = TypeVar("T")


def to_api_error(exc: Exception) -> api.ApiError | None:
    """The ApiClient exception the real API would send for a registry error (None: a bug):
    the server's code for it (errors.status_of), as skiff.client raises that code."""
    if isinstance(exc, api.ApiError):
        return exc
    abort = errors.status_of(exc)
    return None if abort is None else api.error_for(abort.code, abort.message, field_path=abort.field_path)


def _mapped(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def call(self: "FakeApiClient", *args: Any, **kwargs: Any) -> T:
        try:
            await self._bootstrap()
            return await method(self, *args, **kwargs)
        except Exception as exc:
            mapped = to_api_error(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None
    return call


def _kind(name: str) -> kinds.Kind:
    """As the API server: "Pod", "pods", "po" all name the Pod kind."""
    try:
        return kinds.kind_named(name)
    except kinds.UnknownKind:
        return kinds.kind_for_resource(name)


def _namespace(kind: kinds.Kind, namespace: str) -> str:
    return (namespace or "default") if kind.namespaced else ""


class FakeApiClient:
    """ApiClient's methods, arguments and exceptions, over the API logic and a MemoryStore."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore()
        # Services get cluster IPs and node ports as from the API server (defaults: 10.96.0.0/16, 30000-32767).
        self.registry = Registry(store=self.store, hooks={"Service": ServiceAllocations.ready(store=self.store)})
        self.address = "fake"
        self._bootstrapped = False
        self.tokens: Any = None   # serviceaccounts/token: a controlplane.serviceaccounts TokenIssuer

    async def _bootstrap(self) -> None:
        """The initial namespaces, as the control plane creates them at start."""
        if not self._bootstrapped:
            await self.registry.bootstrap()
            self._bootstrapped = True

    async def close(self) -> None:
        await self.registry.close()

    async def use_credentials(self, credentials: "Credentials") -> None:
        """A fake has no channel: the renewed credentials are only kept."""
        self.credentials = credentials

    async def __aenter__(self) -> "FakeApiClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------ objects
    # Objects cross the boundary as copies, as over gRPC: nobody shares a message with the store.

    @_mapped
    async def apply(self, obj: Message, *, dry_run: bool = False,
                    timeout: float | None = 30) -> tuple[Message, str]:
        stored, result = await self.registry.apply(_copy(obj), dry_run=dry_run)
        return _copy(stored), result

    @_mapped
    async def create(self, obj: Message, *, timeout: float | None = 30) -> Message:
        return _copy(await self.registry.create(_copy(obj)))

    @_mapped
    async def update(self, obj: Message, *, timeout: float | None = 30) -> Message:
        return _copy(await self.registry.update(_copy(obj)))

    @_mapped
    async def update_status(self, obj: Message, *, timeout: float | None = 30) -> Message:
        return _copy(await self.registry.update_status(_copy(obj)))

    @_mapped
    async def get(self, kind: str, name: str, namespace: str = "default", *, resource_version: str = "",
                  timeout: float | None = 30) -> Message:
        k = _kind(kind)
        return _copy(await self.registry.get(k, _namespace(k, namespace), name, resource_version=resource_version))

    @_mapped
    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "", *, chunk_size: int = 0,
                   timeout: float | None = 60) -> tuple[list[Message], str]:
        if chunk_size > 0:   # as the real client pages: every page at the first one's revision
            return await api.list_in_chunks(self.list_page, kind, namespace, label_selector, field_selector,
                                            chunk_size=chunk_size, timeout=timeout)
        k = _kind(kind)
        items, revision = await self.registry.list(k, namespace if k.namespaced else "",
                                                   label_selector=label_selector, field_selector=field_selector)
        return [_copy(i) for i in items], revision

    @_mapped
    async def list_page(self, kind: str, namespace: str = "", label_selector: str = "",
                        field_selector: str = "", *, limit: int = 0, continue_: str = "",
                        resource_version: str = "", resource_version_match: str = "",
                        timeout: float | None = 60) -> tuple[list[Message], str, str]:
        k = _kind(kind)
        items, revision, token = await self.registry.list_chunk(
            k, namespace if k.namespaced else "", label_selector=label_selector, field_selector=field_selector,
            resource_version=resource_version, resource_version_match=resource_version_match, limit=limit,
            token=continue_)
        return [_copy(i) for i in items], revision, token

    @_mapped
    async def delete(self, kind: str, name: str, namespace: str = "default",
                     grace_period_seconds: int | None = None, *, precondition_uid: str = "",
                     propagation_policy: str = "", timeout: float | None = 30) -> Message:
        k = _kind(kind)
        return _copy(await self.registry.delete(k, _namespace(k, namespace), name,
                                                grace_period_seconds=grace_period_seconds,
                                                precondition_uid=precondition_uid,
                                                propagation_policy=propagation_policy))

    @_mapped
    async def bind(self, name: str, node_name: str, namespace: str = "default", *,
                   resource_version: str = "", timeout: float | None = 30) -> Message:
        return _copy(await self.registry.bind(namespace or "default", name, node_name,
                                              resource_version=resource_version))

    @_mapped
    async def evict(self, name: str, namespace: str = "default", *, grace_period_seconds: int | None = None,
                    precondition_uid: str = "", dry_run: bool = False, timeout: float | None = 30) -> Message:
        return _copy(await eviction.evict(self.registry, namespace or "default", name,
                                          grace_period_seconds=grace_period_seconds,
                                          precondition_uid=precondition_uid, dry_run=dry_run))

    @_mapped
    async def create_token(self, name: str, namespace: str = "default", *, audiences: tuple[str, ...] = (),
                           expiration_seconds: int | None = None, bound_kind: str = "", bound_name: str = "",
                           bound_uid: str = "", timeout: float | None = 30) -> Message:
        """As a server without a signing key answers, unless `self.tokens` (a TokenIssuer) is set."""
        from proto.skiff.v1 import serviceaccounts_pb2 as sa
        if self.tokens is None:
            raise errors.RpcAbort(grpc.StatusCode.FAILED_PRECONDITION,
                                  "this API server issues no ServiceAccount tokens")
        spec = sa.TokenRequestSpec(audiences=list(audiences), bound_object_ref=sa.BoundObjectReference(
            kind=bound_kind, name=bound_name, uid=bound_uid))
        if expiration_seconds is not None:
            spec.expiration_seconds = expiration_seconds
        return await self.tokens.create(namespace or "default", name, sa.TokenRequest(spec=spec))

    async def access_review(self, *, verb: str, resource: str, namespace: str = "", name: str = "",
                            subresource: str = "", api_group: str = "", user: str = "",
                            groups: tuple[str, ...] = (), timeout: float | None = 30) -> bool:
        """As an insecure server answers (no authorizer): always yes."""
        return True

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "",
                    field_selector: str = "", resource_version: str = "", *, bookmarks: bool = False
                    ) -> AsyncIterator[tuple[str, Message | None, str]]:
        try:
            await self._bootstrap()
            k = _kind(kind)
            stream = self.registry.watch(k, namespace if k.namespaced else "", label_selector=label_selector,
                                         field_selector=field_selector, resource_version=resource_version,
                                         bookmarks=bookmarks)
            try:
                async for event_type, obj, revision in stream:
                    yield event_type, (_copy(obj) if obj is not None else None), revision
            finally:
                await stream.aclose()
        except Exception as exc:
            mapped = to_api_error(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None

    # ------------------------------------------------------------ proxied to agents in the real API

    async def logs(self, name: str, namespace: str = "default", *, container: str = "",
                   follow: bool = False, tail_lines: int = 0, previous: bool = False) -> AsyncIterator[bytes]:
        raise NotImplementedError("FakeApiClient has no node agents: logs is not available")
        yield b""  # pragma: no cover - makes this an async generator, as ApiClient.logs

    async def exec(self, name: str, command: list[str], namespace: str = "default", *,
                   container: str = "", stdin: AsyncIterable[bytes | tuple[int, int]] | None = None,
                   tty: bool = False, size: tuple[int, int] | None = None,
                   ) -> AsyncIterator[tuple[str, bytes | int]]:
        raise NotImplementedError("FakeApiClient has no node agents: exec is not available")
        yield ("", b"")  # pragma: no cover

    async def stats(self, node_name: str, *, timeout: float | None = 30) -> api_pb2.NodeStats:
        raise NotImplementedError("FakeApiClient has no node agents: stats is not available")

    async def attach(self, name: str, namespace: str = "default", *, container: str = "",
                     stdin: AsyncIterable[bytes] | None = None) -> AsyncIterator[tuple[str, bytes | int]]:
        raise NotImplementedError("FakeApiClient has no node agents: attach is not available")
        yield ("", b"")  # pragma: no cover

    async def port_forward(self, name: str, port: int, namespace: str = "default", *,
                           data: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        raise NotImplementedError("FakeApiClient has no node agents: port_forward is not available")
        yield b""  # pragma: no cover


def _copy(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


# ------------------------------------------------------------ driving controllers in tests

@contextlib.asynccontextmanager
async def running(*controllers: Any, factory: Any = None) -> AsyncIterator[None]:
    """Run controllers (their `run()`) for the body of the block, then cancel
    them and stop the factory's informers."""
    tasks = [asyncio.create_task(c.run(), name=f"test-{getattr(c, 'name', c)}") for c in controllers]
    try:
        yield
        for task in tasks:
            if task.done():
                task.result()   # a controller that crashed fails the test with its error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if factory is not None:
            await factory.stop()


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01,
                     what: str = "condition") -> Any:
    """Poll `check()` (a function or a coroutine function) until it returns
    something truthy; returns it. Fails with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g}s")
        await asyncio.sleep(interval)


class CountingStore(MemoryStore):
    """A MemoryStore that counts its reads, for tests that a cache, not the store, answers:
    `reads(*kinds, verb=)` is how many `get`s and `list`s (or only `verb`'s) of those kind
    names (none named: of any) since it was made or `reset()`."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple[str, str], int] = {}

    def _count(self, verb: str, kind: kinds.Kind) -> None:
        self.calls[verb, kind.name] = self.calls.get((verb, kind.name), 0) + 1

    async def get(self, kind, *args, **kwargs):
        self._count("get", kind)
        return await super().get(kind, *args, **kwargs)

    async def list(self, kind, *args, **kwargs):
        self._count("list", kind)
        return await super().list(kind, *args, **kwargs)

    def reads(self, *kind_names: str, verb: str = "") -> int:
        return sum(n for (v, k), n in self.calls.items()
                   if (not verb or v == verb) and (not kind_names or k in kind_names))

    def reset(self) -> None:
        self.calls.clear()
