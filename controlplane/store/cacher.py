"""The API server's watch cache (kube-apiserver's cacher): lists and watches
served from memory kept current by ONE store watch per kind, for every client.

`Cacher` wraps a Store and is one (the registry cannot tell): get and every
write go straight to the store; `list` and `watch` are served from a
`KindCache` per kind, started on a kind's first list or watch:

    store.list(kind) at L ──► objects (namespace → name → object, read-only)
    store.watch(kind, after L) ──► apply ──► ring of the last `capacity` events
                                        └──► every watcher's buffer (shared events)

Guarantees, as Kubernetes gives them:

- A consistent list (no resourceVersion) is never older than etcd at the time
  of the call: the cache asks the store for its current revision E and answers
  once it has seen E. A write to another kind moves E without an event for this
  one, so "seen E" is also proven without waiting (`Store.count`, etcd's
  count-only ranges at E): no object of the kind modified after the cache's
  revision and the same number of objects means the cache's state is etcd's at
  E (one round trip: the count reads E too). If neither happens within
  `sync_timeout` the list is read from the store.
- `resourceVersion=R` with `NotOlderThan` (the default): a state at R or later;
  `Exact` (and a continue token, which carries its first page's revision): the
  state at exactly R, rebuilt from the current one by undoing the ring's events
  after R (each event keeps the object it replaced). R before the ring's window
  is `Compacted` (410 Expired, in Kubernetes' words).
- `watch(after_revision=R)` replays the ring's events after R, then the live
  ones, in order, each once: replay and registration happen in one step of the
  event loop, between two applied events. A watch from before the window is
  served by the store's own watch (one store watch for that client, as without
  the cache; `Compacted` when etcd has dropped the history too).
- Each event is one `CachedEvent` shared by every watcher; its `encoded` dict
  keeps each wire format's bytes (gRPC, JSON), so an event is serialized once,
  not once per watcher. A watcher whose buffer holds `watcher_buffer` events
  (a client that does not read) is closed, as Kubernetes closes it: the client
  resumes from the last revision it got; memory stays bounded.
- A watch whose field selector fixes the kind's trigger field (pods: spec.nodeName,
  Kubernetes' only trigger) is indexed by that value: an event reaches the watchers
  of its object's value (and its previous one's) and the watchers without one, not
  every watcher. With 100 nodes each watching its pods, a pod event woke 100
  watchers to drop 99 of them.
- With `bookmarks`, an idle watch gets a BOOKMARK event (obj None) carrying the
  cache's revision every `bookmark_seconds`, so a client resumes from there.

If the store's watch fails the cache watches again from its revision; if that
revision is compacted (the cache fell too far behind) it lists again and closes
its watchers, who resume or, from before the new window, list again.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from google.protobuf.message import Message

from controlplane.store.interface import (Compacted, FutureRevision, InvalidRevision, NotFound, StoreError, Unavailable,
                                          describe)
from skiff.api import kinds

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1000        # events kept per kind (Kubernetes: --default-watch-cache-size 100, then grows)
WATCHER_BUFFER = 1000          # events a watcher may have unread before it is closed
SYNC_TIMEOUT = 3.0             # how long a consistent read waits for the cache (Kubernetes: 3 s)
CONTINUE_TOO_OLD = ("The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.")
LIST_TOO_OLD = "The resourceVersion for the provided list is too old."

Key = tuple[str, str]           # (namespace, name)

# resource -> (the field selector's field, its value in an object): the field watchers are indexed by.
TRIGGERS: dict[str, tuple[str, Callable[[Message], str]]] = {
    "pods": ("spec.nodeName", lambda pod: pod.spec.node_name),
}


@dataclass(eq=False)
class CachedEvent:
    """A StoreEvent as the cache keeps it: `prev` is the object it replaced in
    the cache (None for ADDED), `encoded` each wire format's bytes of it."""
    type: str
    obj: Message
    revision: int
    prev: Message | None
    key: Key
    encoded: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    items: list[Message]
    revision: int
    next_key: Key | None        # where the next page starts after; None: this was the last


class _Watcher:
    def __init__(self, namespace: str, after: int, buffer: int, trigger: str | None = None) -> None:
        self.namespace, self.after, self.buffer = namespace, after, buffer
        self.trigger = trigger      # the trigger field's value it selects (None: every object)
        self.pending: deque[CachedEvent] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.error: BaseException | None = None

    def offer(self, event: CachedEvent) -> bool:
        """Queue `event` for this watcher; True when that closed it instead (too far behind)."""
        if self.closed or event.revision <= self.after or (self.namespace and event.key[0] != self.namespace):
            return False
        if len(self.pending) >= self.buffer:
            log.info("watch cache: closing a watcher of %s that did not read %d events", self.namespace or "all",
                     self.buffer)
            self.close()
            return True
        self.pending.append(event)
        self.wake.set()
        return False

    def close(self, error: BaseException | None = None) -> None:
        self.closed, self.error = True, error
        self.pending.clear()
        self.wake.set()


class Expired(Compacted):
    """A list at a revision before the cache's window, in Kubernetes' words (410 Expired)."""
    verbatim = True


class _Behind(Exception):
    """The cache did not reach a revision within the sync timeout."""


@dataclass
class CacheStats:
    """What one kind's cache has done since the server started, as kube-apiserver's
    watch-cache metrics count it (controlplane/metrics.py exposes them)."""
    initializations: int = 0    # lists of the kind from the store (the first, and after a compaction)
    received: int = 0           # events from the store's watch
    dispatched: int = 0         # events offered to at least one watcher
    terminated_watchers: int = 0   # closed for not reading WATCHER_BUFFER events
    lists: int = 0              # lists (and pages) served from the cache
    fetched_objects: int = 0    # objects those lists looked at ...
    returned_objects: int = 0   # ... and returned


class KindCache:
    """One kind's objects, its ring of recent events and its watchers."""

    def __init__(self, kind, *, capacity: int, watcher_buffer: int) -> None:
        self.kind = kind
        self.capacity, self.watcher_buffer = capacity, watcher_buffer
        self.objects: dict[str, dict[str, Message]] = {}
        self.count = 0
        self.revision = 0           # the last event applied (or the list's revision)
        self.window_start = 0       # every event after this is in the ring
        self.ring: deque[CachedEvent] = deque()
        self.watchers: set[_Watcher] = set()          # all of them
        self.untriggered: set[_Watcher] = set()       # ... without a trigger value
        self.triggered: dict[str, set[_Watcher]] = {}  # trigger value -> its watchers
        self.trigger = TRIGGERS.get(kind.resource, (None, None))[1]
        # namespace ("" all) -> (revision, R): while the cache is at `revision`, its state (of
        # that namespace) is etcd's at R too — nothing of the kind changed in between.
        self.proofs: dict[str, tuple[int, int]] = {}
        self.advanced = asyncio.Event()
        self.task: asyncio.Task | None = None
        # id(current object) -> its serialized bytes, made on the first list that sends it; an
        # entry goes when its object is replaced (so an id is never reused while it is here).
        self.serialized: dict[int, bytes] = {}
        self.stats = CacheStats()

    def reset(self, items: list[Message], revision: int) -> None:
        self.objects = {}
        for obj in items:
            self.objects.setdefault(obj.metadata.namespace, {})[obj.metadata.name] = obj
        self.count = len(items)
        self.serialized.clear()
        self.revision = self.window_start = revision
        self.ring.clear()
        self.proofs.clear()
        self.stats.initializations += 1
        for w in list(self.watchers):
            w.close()   # they resume from their revision; before the new window, from the store

    def apply(self, type_: str, obj: Message, revision: int) -> None:
        ns, name = obj.metadata.namespace, obj.metadata.name
        names = self.objects.setdefault(ns, {})
        prev = names.get(name)
        if prev is not None:
            self.serialized.pop(id(prev), None)
        if type_ == "DELETED":
            if prev is not None:
                del names[name]
                self.count -= 1
                if not names:
                    del self.objects[ns]
        else:
            names[name] = obj
            if prev is None:
                self.count += 1
        event = CachedEvent(type_, obj, revision, prev, (ns, name))
        if len(self.ring) >= self.capacity:
            self.window_start = self.ring.popleft().revision
        self.ring.append(event)
        self.revision = revision
        self.stats.received += 1
        audience = self._audience(event)
        if audience:
            self.stats.dispatched += 1
        for w in audience:
            if w.offer(event):
                self.stats.terminated_watchers += 1
        self.advanced.set()
        self.advanced = asyncio.Event()

    def _audience(self, event: CachedEvent):
        if not self.triggered:
            return self.watchers
        values = {self.trigger(event.obj)}
        if event.prev is not None:
            values.add(self.trigger(event.prev))   # it left that value: its watchers see it go
        out = list(self.untriggered)
        for value in values:
            out.extend(self.triggered.get(value, ()))
        return out

    def since(self, after: int) -> list[CachedEvent]:
        """The ring's events after `after` (after >= window_start), oldest first."""
        out: list[CachedEvent] = []
        for event in reversed(self.ring):
            if event.revision <= after:
                break
            out.append(event)
        out.reverse()
        return out

    def state(self, namespace: str, at: int | None) -> dict[Key, Message]:
        """(namespace, name) → object, now (`at` None or not before the revision) or at `at`."""
        if namespace:
            out = {(namespace, n): o for n, o in self.objects.get(namespace, {}).items()}
        else:
            out = {(ns, n): o for ns, names in self.objects.items() for n, o in names.items()}
        if at is None or at >= self.revision:
            return out
        for event in reversed(self.ring):      # undo what happened after `at`
            if event.revision <= at:
                break
            if namespace and event.key[0] != namespace:
                continue
            if event.prev is None:
                out.pop(event.key, None)
            else:
                out[event.key] = event.prev
        return out

    def subscribe(self, namespace: str, after: int, trigger: str | None = None) -> _Watcher:
        """A watcher of the events after `after`; with `trigger`, only those whose object had
        or has that value of the kind's trigger field (the caller's selector filters the rest)."""
        if self.trigger is None:
            trigger = None
        replay = self.since(after)
        if trigger is not None:
            replay = [e for e in replay if self.trigger(e.obj) == trigger
                      or e.prev is not None and self.trigger(e.prev) == trigger]
        # The replay (at most the ring) does not count against the buffer: a watcher from far
        # back would otherwise be closed before it read anything, and come back for ever.
        watcher = _Watcher(namespace, after, self.watcher_buffer + len(replay), trigger)
        for event in replay:
            watcher.offer(event)
        self.watchers.add(watcher)
        if trigger is None:
            self.untriggered.add(watcher)
        else:
            self.triggered.setdefault(trigger, set()).add(watcher)
        return watcher

    def unsubscribe(self, watcher: _Watcher) -> None:
        self.watchers.discard(watcher)
        self.untriggered.discard(watcher)
        if watcher.trigger is not None:
            same = self.triggered.get(watcher.trigger)
            if same is not None:
                same.discard(watcher)
                if not same:
                    del self.triggered[watcher.trigger]


class Cacher:
    """A Store whose list and watch are served by the watch cache; see the module docstring."""

    def __init__(self, store, *, capacity: int = DEFAULT_CAPACITY, watcher_buffer: int = WATCHER_BUFFER,
                 sync_timeout: float = SYNC_TIMEOUT, bookmark_seconds: float = 10.0) -> None:
        self.store = store
        self.capacity, self.watcher_buffer = capacity, watcher_buffer
        self.sync_timeout, self.bookmark_seconds = sync_timeout, bookmark_seconds
        self._caches: dict[str, KindCache] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._closed = False

    def caches(self) -> dict[str, KindCache]:
        """resource -> its kind's cache, for the ones started (the metrics read them)."""
        return dict(self._caches)

    # ------------------------------------------------------------ the store's own verbs

    def __getattr__(self, name: str):
        # get, create, update, delete, guaranteed_update, compact, revision, count, check_size,
        # request_limit, observe ...: the store's.
        return getattr(self.store, name)

    async def close(self) -> None:
        await self.stop()
        await self.store.close()

    async def stop(self) -> None:
        """End the caches' store watches and every watcher (the store stays open)."""
        self._closed = True
        for cache in self._caches.values():
            if cache.task is not None:
                cache.task.cancel()
            for w in list(cache.watchers):
                w.close()
        await asyncio.gather(*(c.task for c in self._caches.values() if c.task is not None),
                             return_exceptions=True)

    # ------------------------------------------------------------ reads

    async def get_at(self, kind, namespace: str, name: str, *, resource_version: str) -> Message:
        """Kubernetes' GET at a resource_version: "0" any (the cache's object now), R not older
        than R (the cache's once it reached R); the latest ("") is the store's get, a quorum read.
        A copy: the caller may change it."""
        namespace = namespace if kind.namespaced else ""
        cache = await self._cache(kind)
        if resource_version != "0":
            await self._reach_or_fail(cache, _revision(resource_version), namespace)
        obj = cache.objects.get(namespace, {}).get(name)
        if obj is None:
            raise NotFound(describe(kind, namespace, name) + " not found")
        copy = type(obj)()
        copy.CopyFrom(obj)
        return copy

    def peek(self, kind, namespace: str, name: str) -> Message | None:
        """The cache's object now, a copy, if the kind's cache runs and has it; no waiting and no
        store read. Only a guess: it may be behind the store (the registry's CAS writes start from
        it, as Kubernetes' GuaranteedUpdate starts from the watch cache's object)."""
        cache = self._caches.get(kind.resource)
        if cache is None:
            return None
        obj = cache.objects.get(namespace if kind.namespaced else "", {}).get(name)
        if obj is None:
            return None
        copy = type(obj)()
        copy.CopyFrom(obj)
        return copy

    async def list(self, kind, namespace: str = "") -> tuple[list[Message], int]:
        """A consistent list (Store protocol), from the cache."""
        page = await self.list_page(kind, namespace)
        return page.items, page.revision

    async def list_page(self, kind, namespace: str = "", *, resource_version: str = "", match: str = "",
                        limit: int = 0, continue_from: tuple[int, Key] | None = None,
                        predicate: Callable[[Message], bool] | None = None) -> Page:
        """Kubernetes' list semantics: resource_version "" (consistent), "0" (any), R with `match`
        "NotOlderThan" (default) or "Exact"; `continue_from` = (revision, last key) of a previous
        page; `limit` 0: all. `predicate` (the selectors) is applied before the limit."""
        namespace = namespace if kind.namespaced else ""
        cache = await self._cache(kind)
        at: int | None = None          # None: the current state
        if continue_from is not None:
            at = continue_from[0]
            if at < cache.window_start or not await self._not_compacted(cache, at, error=False):
                raise Expired(CONTINUE_TOO_OLD)
            await self._reach_or_fail(cache, at, namespace)
            if at < cache.window_start:
                raise Expired(CONTINUE_TOO_OLD)
        elif resource_version == "0":
            pass
        elif resource_version:
            wanted = _revision(resource_version)
            if match == "Exact":
                if wanted < cache.window_start or not await self._not_compacted(cache, wanted, error=False):
                    raise Expired(LIST_TOO_OLD)
                await self._reach_or_fail(cache, wanted, namespace)
                if wanted < cache.window_start:
                    raise Expired(LIST_TOO_OLD)
                at = wanted
            else:
                await self._reach_or_fail(cache, wanted, namespace)
        else:
            try:
                await self._reach(cache, None, namespace)
            except _Behind:
                items, revision = await self.store.list(kind, namespace)   # as without the cache
                return paginate(sorted_items({_key(o): o for o in items}), revision, limit=limit,
                                after=None, predicate=predicate)
        # Everything below runs in one step of the loop: the state cannot move under it.
        revision = at if at is not None else self._served_revision(cache, namespace)
        state = cache.state(namespace, at)
        page = paginate(sorted_items(state), revision, limit=limit,
                        after=continue_from[1] if continue_from else None, predicate=predicate)
        cache.stats.lists += 1
        cache.stats.fetched_objects += len(state)
        cache.stats.returned_objects += len(page.items)
        return page

    def serialized(self, obj: Message) -> bytes:
        """obj.SerializeToString(), made once per object version the cache holds (a LIST of
        10 000 pods sends the same bytes every time until a pod changes)."""
        cache = self._caches.get(kinds.kind_of(obj).resource)
        if cache is None:
            return obj.SerializeToString()
        data = cache.serialized.get(id(obj))
        if data is None:
            data = obj.SerializeToString()
            current = cache.objects.get(obj.metadata.namespace, {}).get(obj.metadata.name)
            if current is obj:   # not a past version from the ring (those are not kept)
                cache.serialized[id(obj)] = data
        return data

    # ------------------------------------------------------------ watch

    async def watch(self, kind, namespace: str = "", *, after_revision: int, bookmarks: bool = False,
                    fields: dict[str, str] | None = None) -> AsyncIterator[CachedEvent]:
        """Store.watch from the cache (see the module docstring); with `bookmarks`, a
        CachedEvent of type BOOKMARK (obj None) after `bookmark_seconds` of silence.
        `fields`: the caller's field selector's equalities (field -> value), which it still
        applies itself; one on the kind's trigger field spares it the other values' events."""
        namespace = namespace if kind.namespaced else ""
        if after_revision < 0:
            raise InvalidRevision(f"resource_version {after_revision} is not a revision (must not be negative)")
        cache = await self._cache(kind)
        if after_revision > cache.revision:
            current = await self.store.revision()
            if after_revision > current:
                raise FutureRevision(f"resource_version {after_revision} is newer than the store's revision "
                                     f"{current}")
            try:
                await self._reach(cache, after_revision, namespace)
            except _Behind:
                cache = None
        elif after_revision < cache.revision:
            await self._not_compacted(cache, after_revision + 1)
        if cache is None or after_revision < cache.window_start:
            # Older than the ring (a client's revision from before the cache started, or one that
            # was too slow): the store's own watch still has it, or says Compacted.
            async for event in self.store.watch(kind, namespace, after_revision=after_revision):
                yield event
            return
        trigger_field = TRIGGERS.get(kind.resource, (None,))[0]
        watcher = cache.subscribe(namespace, after_revision, (fields or {}).get(trigger_field))
        try:
            while True:
                while watcher.pending:
                    event = watcher.pending.popleft()
                    watcher.after = event.revision
                    yield event
                if watcher.closed:
                    if watcher.error is not None:
                        raise watcher.error
                    return
                watcher.wake.clear()
                if not bookmarks:
                    await watcher.wake.wait()
                    continue
                try:
                    async with asyncio.timeout(self.bookmark_seconds):   # not wait_for: see store/etcd.py
                        await watcher.wake.wait()
                except TimeoutError:
                    if not watcher.pending and not watcher.closed:
                        watcher.after = max(watcher.after, self._served_revision(cache, watcher.namespace))
                        yield CachedEvent("BOOKMARK", None, watcher.after, None, ("", ""))  # type: ignore[arg-type]
        finally:
            cache.unsubscribe(watcher)

    # ------------------------------------------------------------ the caches

    def warm(self, kinds_: list) -> asyncio.Task:
        """Start the caches of `kinds_` in the background, as kube-apiserver starts its cachers
        with the server: the first list of a kind then does not wait for a whole list from etcd
        (10 000 pods: a second of decoding in the one event loop, under every other call)."""
        async def start_all() -> None:
            for kind in kinds_:
                try:
                    await self._cache(kind)
                except Exception as exc:  # noqa: BLE001 - the first list or watch of the kind tries again
                    log.info("watch cache of %s: not started yet: %s", kind.resource, exc)
        return asyncio.get_running_loop().create_task(start_all(), name="watch-cache warm-up")

    async def _cache(self, kind) -> KindCache:
        cache = self._caches.get(kind.resource)
        if cache is not None:
            return cache
        lock = self._starting.setdefault(kind.resource, asyncio.Lock())
        async with lock:
            cache = self._caches.get(kind.resource)
            if cache is not None:
                return cache
            if self._closed:
                raise Unavailable("the API server is stopping")
            cache = KindCache(kind, capacity=self.capacity, watcher_buffer=self.watcher_buffer)
            items, revision = await self.store.list(kind, "")   # errors go to this first caller
            cache.reset(items, revision)
            cache.task = asyncio.get_running_loop().create_task(self._follow(cache),
                                                                name=f"watch-cache {kind.resource}")
            self._caches[kind.resource] = cache
            return cache

    async def _follow(self, cache: KindCache) -> None:
        """The kind's one store watch, for ever: watch again from the cache's revision after a
        failure, list again when that is compacted."""
        delay = 0.1
        while not self._closed:
            try:
                async for event in self.store.watch(cache.kind, "", after_revision=cache.revision):
                    cache.apply(event.type, event.obj, event.revision)
                    delay = 0.1
            except asyncio.CancelledError:
                raise
            except Compacted:
                log.warning("watch cache of %s: revision %d compacted; listing again", cache.kind.resource,
                            cache.revision)
                try:
                    items, revision = await self.store.list(cache.kind, "")
                    cache.reset(items, revision)
                    continue
                except StoreError as exc:
                    log.warning("watch cache of %s: list: %s", cache.kind.resource, exc)
            except Exception as exc:  # noqa: BLE001 - Unavailable, or a stream that broke: the cache goes on
                log.warning("watch cache of %s: watch after %d ended: %s; again in %.1fs", cache.kind.resource,
                            cache.revision, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _served_revision(self, cache: KindCache, namespace: str = "") -> int:
        """The revision the cache's current state (of `namespace`) is etcd's at, at the latest."""
        best = cache.revision
        for scope in {"", namespace}:
            revision, proven = cache.proofs.get(scope, (-1, -1))
            if revision == cache.revision:
                best = max(best, proven)
        return best

    async def _reach(self, cache: KindCache, at: int | None, namespace: str = "") -> None:
        """Return once the cache's state is the store's at `at` (None: the store's current
        revision, read by the first count: one round trip) or later: it has applied an event at
        `at` or later, or the store shows nothing of the kind changed between the cache's
        revision and `at` (then `proofs` records it). _Behind after `sync_timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sync_timeout
        counting = hasattr(self.store, "count")
        if at is None and not counting:
            at = await self.store.revision()
        while True:
            if at is not None and self._served_revision(cache, namespace) >= at:
                return
            advanced = cache.advanced
            if counting:
                seen = cache.revision
                count = len(cache.objects.get(namespace, ())) if namespace else cache.count
                total, newer, at = await self.store.count(cache.kind, namespace, at=at or 0, modified_after=seen)
                if cache.revision == seen and newer == 0 and total == count:
                    if self._served_revision(cache, namespace) < at:
                        cache.proofs[namespace] = (seen, at)
                    return
                if cache.revision >= at:
                    return
            # Events of the kind are on their way from the store's watch: wait for them.
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Behind()
            try:
                async with asyncio.timeout(min(remaining, 0.25)):
                    await advanced.wait()
            except TimeoutError:
                pass

    async def _not_compacted(self, cache: KindCache, at: int, *, error: bool = True) -> bool:
        """Whether the store still has revision `at` (Compacted, or False, if not). The ring may
        hold events etcd has compacted away; a client asking for them gets what etcd would
        answer (410), as without the cache, and lists again. One count-only read, and only
        for a revision the cache has moved past."""
        if at >= cache.revision or not hasattr(self.store, "count"):
            return True
        try:
            await self.store.count(cache.kind, at=at, modified_after=at)   # nothing is after `at` at `at`
        except Compacted:
            if error:
                raise
            return False
        return True

    async def _reach_or_fail(self, cache: KindCache, at: int, namespace: str = "") -> None:
        if at > cache.revision:
            current = await self.store.revision()
            if at > current:
                raise FutureRevision(f"resource_version {at} is newer than the store's revision {current}")
        try:
            await self._reach(cache, at, namespace)
        except _Behind:
            raise Unavailable(f"the watch cache of {cache.kind.resource} has not reached revision {at} in "
                              f"{self.sync_timeout:g}s; retry") from None


def _revision(resource_version: str) -> int:
    try:
        revision = int(resource_version)
    except ValueError:
        raise InvalidRevision(f"resourceVersion {resource_version!r} is not a revision (a number)") from None
    if revision < 0:
        raise InvalidRevision(f"resourceVersion {resource_version!r} is not a revision (must not be negative)")
    return revision


def _key(obj: Message) -> Key:
    return obj.metadata.namespace, obj.metadata.name


def sorted_items(state: dict[Key, Message]) -> tuple[list[Key], list[Message]]:
    keys = sorted(state)
    return keys, [state[k] for k in keys]


def paginate(ordered: tuple[list[Key], list[Message]], revision: int, *, limit: int, after: Key | None,
             predicate: Callable[[Message], bool] | None) -> Page:
    """The first `limit` (0: all) objects after the key `after` that match `predicate`, in key
    order, and where the next page starts (None when no matching object is left)."""
    keys, objs = ordered
    start = bisect.bisect_right(keys, after) if after is not None else 0
    out: list[Message] = []
    for i in range(start, len(keys)):
        obj = objs[i]
        if predicate is not None and not predicate(obj):
            continue
        if limit and len(out) == limit:
            return Page(out, revision, _key(out[-1]))
        out.append(obj)
    return Page(out, revision, None)
