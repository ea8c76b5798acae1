"""What the API server needs of a store: the `Store` protocol, its errors and its events.

Two implementations keep the same guarantees (tests/controlplane/store/
test_contract.py runs the same cases against both):

- `controlplane.store.etcd.Store` (EtcdStore): the real one, over etcd;
- `controlplane.store.memory.MemoryStore`: in-process, for FakeApiClient and tests.

The guarantees: one global revision that every write moves by one; an object's
`metadata.resourceVersion` is the revision of its last write (never stored in
the value); create refuses an existing key (`AlreadyExists`); update and delete
with a resourceVersion succeed only if it is still current (`Conflict`, never a
lost update); reads and writes of a missing key raise `NotFound`; `list` returns
the revision it read at and `watch(after_revision=R)` delivers every change
after R in order - ADDED (the key's first version), MODIFIED, DELETED (the last
state, resourceVersion = the delete's revision), each with `prev` when known -
or raises `Compacted` if history before R+1 was dropped by `compact`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol

from google.protobuf.message import Message

from skiff.api.validation import REQUEST_LIMIT_BYTES, TXN_OVERHEAD_BYTES, object_size_error  # noqa: F401  (re-exported for the stores)


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """The object changed since the resourceVersion the caller read."""


class Compacted(StoreError):
    """The requested revision is older than the compaction point: list again."""


class Unavailable(StoreError):
    """The store did not answer."""


class TooLarge(StoreError):
    """An object too large for the store's request limit (Kubernetes' 413)."""


class FutureRevision(StoreError):
    """A watch asked to start after a revision the store has not reached (list again)."""


class InvalidRevision(StoreError):
    """A revision that cannot exist (negative)."""


def describe(kind, namespace: str, name: str) -> str:
    """How errors name an object: `Pod "web" in namespace "default"`."""
    if kind.namespaced:
        return f'{kind.name} "{name}" in namespace "{namespace}"'
    return f'{kind.name} "{name}"'


def copy_message(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


async def guaranteed_update(store: Store, kind, namespace: str, name: str,
                            mutate: Callable[[Message], Message | None], *, attempts: int) -> Message:
    """Every store's guaranteed_update: read, apply `mutate` to a copy, write
    with CAS (the resourceVersion read); on Conflict read again. `mutate`
    returning None means "no change" (nothing is written)."""
    for _ in range(attempts):
        current = await store.get(kind, namespace, name)
        changed = mutate(copy_message(current))
        if changed is None:
            return current
        changed.metadata.resource_version = current.metadata.resource_version
        try:
            return await store.update(changed)
        except Conflict:
            continue
    raise Conflict(f"{describe(kind, namespace, name)} kept changing; gave up after {attempts} attempts")


def check_size(obj: Message, what: str, *, request_limit: int = REQUEST_LIMIT_BYTES) -> None:
    """Raise TooLarge if `obj` would not fit in one store write; the message
    names the limit and the largest part of the object, so a user sees which
    field to shrink (not gRPC's "received message larger than max"). The rule
    is skiff.api.validation's, which the kinds' validation also runs."""
    error = object_size_error(obj, request_limit=request_limit)
    if error is not None:
        raise TooLarge(f"{what} is {error.message}")


def encode(obj: Message, what: str, *, request_limit: int = REQUEST_LIMIT_BYTES) -> bytes:
    """The stored form of `obj` (resourceVersion cleared: it is the key's
    revision), serialized once; TooLarge, as check_size, when it would not fit
    in one store write (the size check itself serializes, so it runs only then)."""
    stored = copy_message(obj)
    stored.metadata.resource_version = ""
    data = stored.SerializeToString(deterministic=True)
    if len(data) > request_limit - TXN_OVERHEAD_BYTES:
        check_size(stored, what, request_limit=request_limit)
    return data


@dataclass(frozen=True)
class StoreEvent:
    type: str                   # ADDED, MODIFIED, DELETED
    obj: Message                # for DELETED: the last state, resourceVersion = the delete's revision
    revision: int
    prev: Message | None = None  # the state before (MODIFIED, DELETED), when the store still has it


class Store(Protocol):
    """Typed objects by (kind, namespace, name); see the module docstring."""

    async def get(self, kind, namespace: str, name: str) -> Message: ...

    async def list(self, kind, namespace: str = "") -> tuple[list[Message], int]: ...

    async def revision(self) -> int: ...

    async def count(self, kind, namespace: str = "", *, at: int = 0,
                    modified_after: int) -> tuple[int, int, int]:
        """(objects of `kind` (in `namespace`) at revision `at` (0: current), how many last modified after
        `modified_after`, that revision):
        what the watch cache (cacher.py) proves "nothing of this kind changed up to `at`" with."""

    async def create(self, obj: Message) -> Message: ...

    async def update(self, obj: Message) -> Message: ...

    async def delete(self, kind, namespace: str, name: str, *, resource_version: str = "") -> Message: ...

    async def guaranteed_update(self, kind, namespace: str, name: str,
                                mutate: Callable[[Message], Message | None], *, attempts: int = 10) -> Message: ...

    async def compact(self, revision: int) -> None: ...

    def check_size(self, obj: Message) -> None:
        """Raise TooLarge if a write of `obj` would be refused for its size (dry runs ask this)."""

    def watch(self, kind, namespace: str = "", *, after_revision: int) -> AsyncIterator[StoreEvent]: ...

    async def close(self) -> None: ...
