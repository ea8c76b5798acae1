"""MemoryStore: the Store protocol in memory, with etcd's semantics (see interface.py).

For FakeApiClient and tests: one global revision (starting at 1, as a fresh
etcd), resourceVersion = the key's mod revision, CAS Conflict, AlreadyExists,
NotFound, a history of every change so a watch can start from any revision,
and `compact(rev)` dropping history so a watch from before it raises
Compacted. Values are stored serialized, as in etcd, so nobody can change a
stored object through a reference they hold. TTLs (Event expiry) are ignored.
Set `unavailable` to a message to make every call raise Unavailable (an etcd
outage in a test).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from google.protobuf.message import Message

from controlplane.store.interface import (REQUEST_LIMIT_BYTES, AlreadyExists, Compacted, Conflict,
                                          FutureRevision, InvalidRevision, NotFound, StoreEvent, Unavailable, check_size,
                                          copy_message, describe, encode, guaranteed_update)
from skiff.api import kinds

_Key = tuple[str, str, str]   # (resource, namespace, name)


@dataclass(frozen=True)
class _Value:
    data: bytes
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True)
class _Change:
    revision: int
    key: _Key
    value: _Value | None      # None: deleted
    prev: _Value | None


class MemoryStore:
    def __init__(self, *, request_limit: int = REQUEST_LIMIT_BYTES, **_ignored: object) -> None:
        self.request_limit = request_limit
        self._revision = 1
        self._compacted = 0        # history before this revision is gone
        self._data: dict[_Key, _Value] = {}
        self._history: list[_Change] = []
        self._changed = asyncio.Event()
        self.unavailable: str | None = None

    async def close(self) -> None:
        self._changed.set()

    # ------------------------------------------------------------ helpers

    def _check(self) -> None:
        if self.unavailable:
            raise Unavailable(self.unavailable)

    @staticmethod
    def _key(kind: kinds.Kind, namespace: str, name: str) -> _Key:
        return kind.resource, namespace if kind.namespaced else "", name

    @staticmethod
    def _decode(kind: kinds.Kind, value: _Value, revision: int | None = None) -> Message:
        obj = kind.message()
        obj.ParseFromString(value.data)
        obj.metadata.resource_version = str(revision if revision is not None else value.mod_revision)
        return obj

    def check_size(self, obj: Message) -> None:
        kind = kinds.kind_of(obj)
        check_size(obj, describe(kind, obj.metadata.namespace, obj.metadata.name), request_limit=self.request_limit)

    def _encode(self, obj: Message) -> bytes:
        return encode(obj, describe(kinds.kind_of(obj), obj.metadata.namespace, obj.metadata.name),
                      request_limit=self.request_limit)

    def _write(self, key: _Key, value: _Value | None) -> int:
        prev = self._data.get(key)
        if value is None:
            del self._data[key]
        else:
            self._data[key] = value
        self._history.append(_Change(self._revision, key, value, prev))
        self._changed.set()
        self._changed = asyncio.Event()
        return self._revision

    # ------------------------------------------------------------ reads

    async def get(self, kind: kinds.Kind, namespace: str, name: str) -> Message:
        self._check()
        value = self._data.get(self._key(kind, namespace, name))
        if value is None:
            raise NotFound(describe(kind, namespace, name) + " not found")
        return self._decode(kind, value)

    async def list(self, kind: kinds.Kind, namespace: str = "") -> tuple[list[Message], int]:
        self._check()
        items = [self._decode(kind, value) for key, value in sorted(self._data.items())
                 if _in(kind, namespace, key)]
        return items, self._revision

    async def revision(self) -> int:
        self._check()
        return self._revision

    async def count(self, kind: kinds.Kind, namespace: str = "", *, at: int = 0,
                    modified_after: int) -> tuple[int, int, int]:
        """(objects of `kind` (in `namespace`) at revision `at` (0: the current one), how many
        of them last modified after `modified_after`, that revision)."""
        self._check()
        at = at or self._revision
        if at > self._revision:
            raise FutureRevision(f"revision {at} is newer than the store's revision {self._revision}")
        if at < self._compacted:
            raise Compacted(f"revision {at} has been compacted (oldest available: {self._compacted})")
        state = {key: value for key, value in self._data.items() if _in(kind, namespace, key)}
        for change in reversed(self._history):
            if change.revision <= at:
                break
            if _in(kind, namespace, change.key):
                if change.prev is None:
                    state.pop(change.key, None)
                else:
                    state[change.key] = change.prev
        return len(state), sum(1 for value in state.values() if value.mod_revision > modified_after), at

    # ------------------------------------------------------------ writes

    async def create(self, obj: Message) -> Message:
        self._check()
        kind = kinds.kind_of(obj)
        key = self._key(kind, obj.metadata.namespace, obj.metadata.name)
        if key in self._data:
            raise AlreadyExists(describe(kind, obj.metadata.namespace, obj.metadata.name) + " already exists")
        data = self._encode(obj)
        revision = self._revision + 1
        self._revision = revision
        self._write(key, _Value(data, revision, revision, 1))
        return _with_version(obj, revision)

    async def update(self, obj: Message) -> Message:
        self._check()
        kind = kinds.kind_of(obj)
        ns, name = obj.metadata.namespace, obj.metadata.name
        key = self._key(kind, ns, name)
        current = self._data.get(key)
        rv = obj.metadata.resource_version
        if current is None:
            raise NotFound(describe(kind, ns, name) + " not found")
        if rv and int(rv) != current.mod_revision:
            raise Conflict(f"{describe(kind, ns, name)} was modified (resourceVersion {current.mod_revision}, "
                           f"request had {rv}); read it again and retry")
        data = self._encode(obj)
        self._revision += 1
        self._write(key, _Value(data, current.create_revision, self._revision, current.version + 1))
        return _with_version(obj, self._revision)

    async def delete(self, kind: kinds.Kind, namespace: str, name: str, *,
                     resource_version: str = "") -> Message:
        self._check()
        key = self._key(kind, namespace, name)
        current = self._data.get(key)
        if current is None:
            raise NotFound(describe(kind, namespace, name) + " not found")
        if resource_version and int(resource_version) != current.mod_revision:
            raise Conflict(f"{describe(kind, namespace, name)} was modified since resourceVersion "
                           f"{resource_version}; read it again and retry")
        self._revision += 1
        self._write(key, None)
        return self._decode(kind, current, self._revision)

    async def guaranteed_update(self, kind: kinds.Kind, namespace: str, name: str,
                                mutate: Callable[[Message], Message | None], *, attempts: int = 10) -> Message:
        return await guaranteed_update(self, kind, namespace, name, mutate, attempts=attempts)

    async def compact(self, revision: int) -> None:
        """Drop history before `revision`; a watch that needs it raises Compacted."""
        self._check()
        if revision > self._revision:
            raise Unavailable(f"compact: revision {revision} is in the future (current {self._revision})")
        self._compacted = max(self._compacted, revision)
        self._history = [c for c in self._history if c.revision >= self._compacted]

    # ------------------------------------------------------------ watch

    async def watch(self, kind: kinds.Kind, namespace: str = "", *,
                    after_revision: int) -> AsyncIterator[StoreEvent]:
        """Every change of `kind` objects after `after_revision`, in order, then
        each new one as it happens."""
        self._check()
        if after_revision < 0:
            raise InvalidRevision(f"resource_version {after_revision} is not a revision (must not be negative)")
        if after_revision > self._revision:
            raise FutureRevision(f"resource_version {after_revision} is newer than the store's revision "
                                 f"{self._revision}")
        last = after_revision
        while True:
            if last + 1 < self._compacted:
                raise Compacted(f"revision {after_revision} has been compacted "
                                f"(oldest available: {self._compacted})")
            changed = self._changed
            pending = [c for c in self._history if c.revision > last]
            for change in pending:
                last = change.revision
                if not _in(kind, namespace, change.key):
                    continue
                yield self._event(kind, change)
            if not pending:
                await changed.wait()
                self._check()

    def _event(self, kind: kinds.Kind, change: _Change) -> StoreEvent:
        prev = self._decode(kind, change.prev) if change.prev is not None else None
        if change.value is None:
            last = copy_message(prev)
            last.metadata.resource_version = str(change.revision)
            return StoreEvent("DELETED", last, change.revision, prev)
        type_ = "ADDED" if change.value.version == 1 else "MODIFIED"
        return StoreEvent(type_, self._decode(kind, change.value), change.revision, prev)


def _in(kind: kinds.Kind, namespace: str, key: _Key) -> bool:
    return key[0] == kind.resource and (not namespace or not kind.namespaced or key[1] == namespace)


def _with_version(obj: Message, revision: int) -> Message:
    out = copy_message(obj)
    out.metadata.resource_version = str(revision)
    return out


