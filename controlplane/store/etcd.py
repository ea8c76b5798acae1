"""The object store: the only code in Skiff that talks to etcd.

Layout: one key per object, `/skiff/<resource>/<namespace>/<name>` (cluster-
scoped kinds use the namespace segment `_`), the value the serialized typed
protobuf message. `metadata.resourceVersion` is never stored: it is filled from
the key's `mod_revision` on every read, so it can never disagree with etcd.

Every write is one etcd transaction whose guard makes it safe without locks:
create = "the key does not exist"; update and delete with a resourceVersion =
"mod_revision is still that" (otherwise `Conflict`, never a lost update).
`list` returns the revision it read at and `watch` resumes from any later
revision; a revision that etcd has compacted away raises `Compacted`, and the
caller lists again (what Kubernetes calls 410 Gone).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import TYPE_CHECKING, AsyncIterator, Callable

import aetcd
import grpc
import aetcd.exceptions
from aetcd import rpc
from google.protobuf.message import Message

from controlplane.store.interface import (REQUEST_LIMIT_BYTES, AlreadyExists, Compacted,  # noqa: F401
                                          Conflict, FutureRevision, InvalidRevision, NotFound, StoreError, StoreEvent,
                                          Unavailable, check_size, copy_message, describe, encode, guaranteed_update)
from skiff.api import kinds

if TYPE_CHECKING:
    from controlplane.store.encryption import SecretEncryption
    from skiff.pki import Credentials

ENCRYPTED_RESOURCES = ("secrets",)   # with `encryption`: what is stored encrypted, as Kubernetes' usual config

log = logging.getLogger(__name__)

CLUSTER_SCOPE = "_"


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with prefix"."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _timed(operation: str):
    """Time the call into `Store.observe(operation, resource, seconds, failed=)`,
    if set (the control plane's etcd_request_duration_seconds); failed means
    etcd could not be reached, not an answer such as NotFound or Conflict."""
    def decorate(method):
        @functools.wraps(method)
        async def timed(self, first, *args, **kwargs):
            if self.observe is None:
                return await method(self, first, *args, **kwargs)
            started = time.perf_counter()
            failed = False
            try:
                return await method(self, first, *args, **kwargs)
            except Unavailable:
                failed = True
                raise
            finally:
                kind = first if isinstance(first, kinds.Kind) else kinds.kind_of(first)
                self.observe(operation, kind.resource, time.perf_counter() - started, failed=failed)
        return timed
    return decorate


class Store:
    """Typed objects over etcd; see the module docstring for the guarantees."""

    def __init__(self, *, endpoint: str, root: str = "/skiff", timeout: float = 10.0,
                 event_ttl: float = 3600.0, request_limit: int = REQUEST_LIMIT_BYTES,
                 watch_progress_interval: float = 30.0, tls: "Credentials | None" = None,
                 encryption: "SecretEncryption | None" = None) -> None:
        """`tls`: etcd's CA and this client's certificate (secure mode, etcd's --client-cert-auth);
        `encryption`: Secrets are stored encrypted with it (controlplane/store/encryption.py)."""
        self.encryption = encryption
        endpoint = endpoint.removeprefix("http://").removeprefix("https://")  # etcd's flags spell URLs
        host, _, port = endpoint.rpartition(":")
        self.endpoint = endpoint
        self.root = root.rstrip("/")
        self.event_ttl = event_ttl   # seconds an Event lives after its last write; 0: for ever
        self.request_limit = request_limit   # etcd's --max-request-bytes: larger objects are refused here
        self.watch_progress_interval = watch_progress_interval   # a silent watch asks etcd this often
        self._timeout = timeout
        self._event_lease: tuple[int, float] | None = None   # (lease id, when granted)
        self.observe: Callable[..., None] | None = None   # set by the control plane: request timing
        # etcd bounds what it stores; what it sends back (a watch event carries the
        # object and its previous value) must never be refused by our own client
        # (gRPC's default of 4 MiB did, and the stream died with it): as Kubernetes'
        # etcd client, receive whatever etcd sends.
        if tls is None:
            self._client = aetcd.Client(host=host or "127.0.0.1", port=int(port), timeout=timeout,
                                        options={"grpc.max_receive_message_length": -1})
        else:
            from controlplane.store.etcdtls import TlsClient
            self._client = TlsClient(credentials=tls, host=host or "127.0.0.1", port=int(port), timeout=timeout,
                                     options={"grpc.max_receive_message_length": -1})

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------ keys

    def key(self, kind: kinds.Kind, namespace: str, name: str) -> bytes:
        ns = namespace if kind.namespaced else CLUSTER_SCOPE
        return f"{self.root}/{kind.resource}/{ns}/{name}".encode()

    def prefix(self, kind: kinds.Kind, namespace: str = "") -> bytes:
        if namespace and kind.namespaced:
            return f"{self.root}/{kind.resource}/{namespace}/".encode()
        return f"{self.root}/{kind.resource}/".encode()

    def _decode(self, kind: kinds.Kind, kv: object, revision: int | None = None) -> Message:
        obj = kind.message()
        value = kv.value
        if self.encryption is not None and kind.resource in ENCRYPTED_RESOURCES:
            value = self.encryption.decrypt(kv.key, value)
        obj.ParseFromString(value)
        obj.metadata.resource_version = str(revision if revision is not None else kv.mod_revision)
        return obj

    def check_size(self, obj: Message) -> None:
        kind = kinds.kind_of(obj)
        check_size(obj, describe(kind, obj.metadata.namespace, obj.metadata.name), request_limit=self.request_limit)

    def _from_key(self, kind: kinds.Kind, key: bytes) -> Message:
        ns, _, name = key.decode()[len(self.prefix(kind)):].partition("/")
        obj = kind.message()
        obj.metadata.name = name
        obj.metadata.namespace = "" if ns == CLUSTER_SCOPE else ns
        return obj

    def _encode(self, obj: Message) -> bytes:
        kind = kinds.kind_of(obj)
        value = encode(obj, describe(kind, obj.metadata.namespace, obj.metadata.name),
                       request_limit=self.request_limit)
        if self.encryption is not None and kind.resource in ENCRYPTED_RESOURCES:
            value = self.encryption.encrypt(self.key(kind, obj.metadata.namespace, obj.metadata.name), value)
        return value

    async def _kv(self) -> rpc.KVStub:
        # aetcd's high-level calls drop the response header, and the header's
        # revision is what a list or a write must report: use its KV stub directly.
        await self._client.connect()
        return self._client.kvstub

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        try:
            kv = await self._kv()
            return await kv.Txn(request, timeout=self._client._timeout)
        except (rpc.AioRpcError, aetcd.exceptions.ClientError, OSError) as exc:
            raise Unavailable(f"cannot reach etcd at {self.endpoint}: {_reason(exc)}") from exc

    async def _range(self, request: rpc.RangeRequest) -> rpc.RangeResponse:
        try:
            kv = await self._kv()
            return await kv.Range(request, timeout=self._client._timeout)
        except (rpc.AioRpcError, aetcd.exceptions.ClientError, OSError) as exc:
            raise Unavailable(f"cannot reach etcd at {self.endpoint}: {_reason(exc)}") from exc

    # ------------------------------------------------------------ reads

    @_timed("get")
    async def get(self, kind: kinds.Kind, namespace: str, name: str) -> Message:
        response = await self._range(rpc.RangeRequest(key=self.key(kind, namespace, name)))
        if not response.kvs:
            raise NotFound(describe(kind, namespace, name) + " not found")
        return self._decode(kind, response.kvs[0])

    @_timed("list")
    async def list(self, kind: kinds.Kind, namespace: str = "") -> tuple[list[Message], int]:
        """Every object of `kind` (in `namespace`, or all), and the revision read at."""
        prefix = self.prefix(kind, namespace)
        response = await self._range(rpc.RangeRequest(key=prefix, range_end=_prefix_end(prefix)))
        return [self._decode(kind, kv) for kv in response.kvs], response.header.revision

    async def revision(self) -> int:
        response = await self._range(rpc.RangeRequest(key=f"{self.root}/".encode(), limit=1))
        return response.header.revision

    async def count(self, kind: kinds.Kind, namespace: str = "", *, at: int = 0,
                    modified_after: int) -> tuple[int, int, int]:
        """(objects of `kind` (in `namespace`) at revision `at` (0: the current one), how many
        of them last modified after `modified_after`, that revision), in one transaction: a
        count-only range, and a keys-only one filtered by mod revision (etcd ignores that
        filter when only counting, so the keys come back: the few modified ones). The watch
        cache's proof that nothing of a kind changed up to `at` (cacher.py)."""
        prefix = self.prefix(kind, namespace)
        end = _prefix_end(prefix)
        try:
            response = await self._txn(rpc.TxnRequest(success=[
                rpc.RequestOp(request_range=rpc.RangeRequest(key=prefix, range_end=end, revision=at,
                                                             count_only=True)),
                rpc.RequestOp(request_range=rpc.RangeRequest(key=prefix, range_end=end, revision=at, keys_only=True,
                                                             min_mod_revision=modified_after + 1))]))
        except Unavailable as exc:
            if "compacted" in str(exc):
                raise Compacted(f"revision {at} has been compacted") from None
            if "future revision" in str(exc):
                raise FutureRevision(f"revision {at} is newer than the store's revision") from None
            raise
        return (response.responses[0].response_range.count, len(response.responses[1].response_range.kvs),
                at or response.header.revision)

    # ------------------------------------------------------------ writes

    async def _lease(self, kind: kinds.Kind) -> int:
        """The etcd lease an object is written with: kinds whose strategy sets
        a ttl_seconds (Events) expire, as in Kubernetes (--event-ttl, 1 h by
        default, is `event_ttl`); everything else lives until deleted (0).
        One lease serves every such object written in a short window (5% of
        the TTL, at most a minute), so it lives between the TTL and the TTL
        plus that window after its last write."""
        if kind.strategy.ttl_seconds <= 0 or self.event_ttl <= 0:
            return 0
        window = min(60.0, self.event_ttl * 0.05)
        now = time.monotonic()
        if self._event_lease is None or now - self._event_lease[1] >= window:
            try:
                lease = await self._client.lease(math.ceil(self.event_ttl + window))
            except (rpc.AioRpcError, aetcd.exceptions.ClientError, OSError) as exc:
                raise Unavailable(f"cannot reach etcd at {self.endpoint}: {_reason(exc)}") from exc
            self._event_lease = (lease.id, now)
        return self._event_lease[0]

    @_timed("create")
    async def create(self, obj: Message) -> Message:
        kind = kinds.kind_of(obj)
        key = self.key(kind, obj.metadata.namespace, obj.metadata.name)
        response = await self._txn(rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                 create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=self._encode(obj),
                                                              lease=await self._lease(kind)))]))
        if not response.succeeded:
            raise AlreadyExists(describe(kind, obj.metadata.namespace, obj.metadata.name) + " already exists")
        created = type(obj)()
        created.CopyFrom(obj)
        created.metadata.resource_version = str(response.header.revision)
        return created

    @_timed("update")
    async def update(self, obj: Message) -> Message:
        """Replace the stored object. With metadata.resourceVersion set, only if
        it is still current (else Conflict); without, only if the key exists."""
        kind = kinds.kind_of(obj)
        ns, name = obj.metadata.namespace, obj.metadata.name
        key = self.key(kind, ns, name)
        rv = obj.metadata.resource_version
        if rv:
            guard = rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=int(rv))
        else:
            guard = rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.GREATER, create_revision=0)
        response = await self._txn(rpc.TxnRequest(
            compare=[guard],
            # (A put without the lease would detach an Event from its expiry.)
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=self._encode(obj),
                                                              lease=await self._lease(kind)))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))]))
        if not response.succeeded:
            if not response.responses[0].response_range.kvs:
                raise NotFound(describe(kind, ns, name) + " not found")
            current = response.responses[0].response_range.kvs[0].mod_revision
            raise Conflict(f"{describe(kind, ns, name)} was modified (resourceVersion {current}, "
                           f"request had {rv}); read it again and retry")
        updated = type(obj)()
        updated.CopyFrom(obj)
        updated.metadata.resource_version = str(response.header.revision)
        return updated

    @_timed("delete")
    async def delete(self, kind: kinds.Kind, namespace: str, name: str, *,
                     resource_version: str = "") -> Message:
        """Remove the object (only at `resource_version` if given); returns its last state."""
        key = self.key(kind, namespace, name)
        compare = []
        if resource_version:
            compare = [rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                                   mod_revision=int(resource_version))]
        response = await self._txn(rpc.TxnRequest(
            compare=compare,
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))]))
        if not response.succeeded:
            if not response.responses[0].response_range.kvs:
                raise NotFound(describe(kind, namespace, name) + " not found")
            raise Conflict(f"{describe(kind, namespace, name)} was modified since resourceVersion "
                           f"{resource_version}; read it again and retry")
        deleted = response.responses[0].response_delete_range
        if not deleted.prev_kvs:
            raise NotFound(describe(kind, namespace, name) + " not found")
        return self._decode(kind, deleted.prev_kvs[0], response.header.revision)

    async def guaranteed_update(self, kind: kinds.Kind, namespace: str, name: str,
                                mutate: Callable[[Message], Message | None], *, attempts: int = 10) -> Message:
        return await guaranteed_update(self, kind, namespace, name, mutate, attempts=attempts)

    async def compact(self, revision: int) -> None:
        """Drop history before `revision` (tests use this to force a re-list)."""
        try:
            await self._client.compact(revision, physical=True)
        except aetcd.exceptions.ClientError as exc:
            raise Unavailable(f"etcd at {self.endpoint}: compact: {_reason(exc)}") from exc

    # ------------------------------------------------------------ watch

    async def watch(self, kind: kinds.Kind, namespace: str = "", *,
                    after_revision: int) -> AsyncIterator[StoreEvent]:
        """Every change of `kind` objects after `after_revision`, in order.
        Raises Compacted when etcd no longer has that history, FutureRevision
        when etcd has not reached it, Unavailable when the stream fails or
        stalls: a watch ends with an error, never in silence.

        Each watch is its own gRPC stream on the shared channel, not one of
        aetcd's watches multiplexed on a single stream: there, one response too
        large for the channel (a watcher catching up over big objects: etcd
        batches up to 1000 revisions in a response) ended the stream for every
        watcher at once, each re-watch from its revision brought the same batch
        back, and every watch in the control plane stayed silent until a
        restart. Here a failure is this watch's alone, `fragment` keeps etcd's
        responses within its request limit, and the channel takes any size.
        A watch that hears nothing for `watch_progress_interval` asks etcd for
        progress; no answer within the timeout means the stream has stalled."""
        prefix = self.prefix(kind, namespace)
        if after_revision < 0:
            raise InvalidRevision(f"resource_version {after_revision} is not a revision (must not be negative)")
        current = await self.revision()
        if after_revision > current:
            raise FutureRevision(f"resource_version {after_revision} is newer than the store's revision {current}")
        try:
            await self._client.connect()
        except (aetcd.exceptions.ClientError, rpc.AioRpcError, OSError) as exc:
            raise Unavailable(f"etcd at {self.endpoint}: watch: {_reason(exc)}") from exc
        requests: asyncio.Queue[rpc.WatchRequest | None] = asyncio.Queue()
        requests.put_nowait(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=prefix, range_end=_prefix_end(prefix), start_revision=after_revision + 1,
            prev_kv=True, fragment=True)))

        async def send() -> AsyncIterator[rpc.WatchRequest]:
            while (request := await requests.get()) is not None:
                yield request

        call = rpc.WatchStub(self._client.channel).Watch(send(), metadata=self._client.metadata)
        # Reading in a task of its own: cancelling a pending read() would cancel
        # the whole call, and the silence timer must be able to give up waiting.
        # One response at a time keeps gRPC's flow control: a slow consumer slows
        # etcd's sending rather than filling memory.
        responses: asyncio.Queue[object] = asyncio.Queue(maxsize=1)

        async def receive() -> None:
            try:
                while (response := await call.read()) is not grpc.aio.EOF:
                    await responses.put(response)
                await responses.put(Unavailable(f"etcd at {self.endpoint} closed the watch stream"))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, who raises it
                await responses.put(exc)

        reader = asyncio.get_running_loop().create_task(receive(), name=f"etcd-watch {prefix.decode()}")
        what = f"watch of {prefix.decode()} after revision {after_revision}"
        try:
            while True:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for returns a result that is
                # ready as the task is cancelled and drops the cancellation, and this loop then
                # held the control plane's shutdown (tests/controlplane/test_main.py, under load).
                try:
                    async with asyncio.timeout(self.watch_progress_interval):
                        response = await responses.get()
                except TimeoutError:
                    requests.put_nowait(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))
                    try:
                        async with asyncio.timeout(self._timeout):
                            response = await responses.get()
                    except TimeoutError:
                        raise Unavailable(f"etcd at {self.endpoint}: {what} stalled: no answer to a "
                                          f"progress request in {self._timeout:g}s") from None
                if isinstance(response, rpc.AioRpcError):
                    raise Unavailable(f"etcd at {self.endpoint}: {what}: {_reason(response)}") from response
                if isinstance(response, StoreError):
                    raise response
                if isinstance(response, Exception):
                    raise Unavailable(f"etcd at {self.endpoint}: {what}: {_reason(response)}") from response
                if response.compact_revision:
                    raise Compacted(f"revision {after_revision} has been compacted "
                                    f"(oldest available: {response.compact_revision})")
                if response.canceled:
                    raise Unavailable(f"etcd at {self.endpoint} canceled the {what}: "
                                      f"{response.cancel_reason or 'no reason given'}")
                for event in response.events:
                    yield self._event(kind, event)
        finally:
            requests.put_nowait(None)
            call.cancel()
            reader.cancel()

    def _event(self, kind: kinds.Kind, event: rpc.Event) -> StoreEvent:
        prev = self._decode(kind, event.prev_kv) if event.HasField("prev_kv") else None
        if event.type == rpc.Event.DELETE:
            # Without the old value (compacted away) the key still names the object.
            last = copy_message(prev) if prev is not None else self._from_key(kind, event.kv.key)
            last.metadata.resource_version = str(event.kv.mod_revision)
            return StoreEvent("DELETED", last, event.kv.mod_revision, prev)
        kind_of_change = "ADDED" if event.kv.version == 1 else "MODIFIED"
        return StoreEvent(kind_of_change, self._decode(kind, event.kv), event.kv.mod_revision, prev)


def _reason(exc: BaseException) -> str:
    """A short reason: gRPC's connection errors end in the part a person needs."""
    text = (exc.details() or exc.code().name) if isinstance(exc, rpc.AioRpcError) else (str(exc) or "")
    if not text and exc.__cause__ is not None:
        return _reason(exc.__cause__)
    lowered = text.lower()
    for reason in ("connection refused", "deadline exceeded", "timed out", "no route to host"):
        if reason in lowered:
            return reason
    return text or type(exc).__name__
