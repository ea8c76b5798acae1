"""Informers: an in-memory, indexed cache of one kind, kept current by list + watch,
and the factory that shares one informer per (kind, namespace, selectors) in a process.

client-go's shape. An informer lists (remembering the revision the list was read
at), then watches from that revision, applying each event to its cache
(`Indexer`) and then telling its handlers. It lists again - and diffs the new
list against the cache, so objects changed or deleted meanwhile are noticed -
when:

    Gone           the watch revision was compacted
    error          the stream broke or the API could not be reached (with
                   skiff.retry back-off between attempts)
    silent         the watch delivered nothing for `resync_seconds`

The last one is the safety net for a watch that is stuck without failing (issue
15: after a burst of huge objects every watch went quiet while nothing broke).
A quiet watch is normal for an idle kind, so a silent re-list is only a *stall*
when it finds changes the watch never delivered; stalls are logged as warnings
and counted in `skiff_informer_stalls_total{kind}`, every re-list in
`skiff_informer_relists_total{kind,reason}`.

Readiness (issue 15): `problem(bound)` says why an informer cannot be trusted
once it has been failing longer than `bound` seconds - its list or watch kept
failing (it is failing from the first error until a watch delivers an event or
stays open for SETTLED_SECONDS), or its last silent re-list found a stall (until
the watch delivers again or a later re-list finds nothing missed). The control
plane's /readyz and the agent's node Ready condition read it.

Handlers are plain functions (`on_add(key, obj)`, `on_update(key, old, new)`,
`on_delete(key, old)`, or `add_handler(fn)` for `fn(key)` on any change). They
run after the cache is updated, on the informer's task, so they must not block:
they enqueue a key and return (a handler that raises is logged, the cache goes
on). Level-triggered consumers re-read the object from the lister by key.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.client import ApiError, Gone
from skiff.controller.lister import IndexFunc, Indexer, Key, Lister, key_of
from skiff.controller.metrics import ControllerMetrics
from skiff.retry import Backoff

log = logging.getLogger(__name__)

DEFAULT_RESYNC_SECONDS = 300.0
SETTLED_SECONDS = 5.0   # a watch open this long without an error counts as working again
READY_BOUND_SECONDS = 30.0   # failing longer than this makes a process not ready (/readyz, node Ready)


class ListWatcher(Protocol):
    """What an informer needs of an API client (skiff.client.ApiClient, FakeApiClient)."""

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]: ...

    def watch(self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = "",
              resource_version: str = "", *, bookmarks: bool = False
              ) -> AsyncIterator[tuple[str, Message | None, str]]: ...


@dataclass(frozen=True)
class EventHandler:
    on_add: Callable[[Key, Message], None] | None = None
    on_update: Callable[[Key, Message, Message], None] | None = None
    on_delete: Callable[[Key, Message], None] | None = None


class _Silent(Exception):
    """The watch delivered nothing for resync_seconds."""


def _check_sync(fn: Callable | None) -> None:
    if fn is not None and inspect.iscoroutinefunction(fn):
        raise TypeError(f"informer handlers must not block: {fn.__qualname__} is async; "
                        f"make it a plain function that enqueues")


class Informer:
    """Cache of `kind` objects matching the selectors, with change handlers."""

    def __init__(self, client: ListWatcher, kind: str, *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "", resync_seconds: float = DEFAULT_RESYNC_SECONDS,
                 backoff: Backoff = Backoff(initial=0.2, maximum=5.0), metrics: ControllerMetrics | None = None,
                 indexes: dict[str, IndexFunc] | None = None,
                 transform: Callable[[Message], Message] | None = None) -> None:
        """`transform` (client-go's SetTransform): what the cache keeps of each object listed or
        watched, e.g. only the fields its controllers read; it keeps metadata.resourceVersion."""
        self.client = client
        self.kind = kind
        self.transform = transform
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_seconds = resync_seconds
        self.backoff = backoff
        self.metrics = metrics or ControllerMetrics()
        self.resource_version = ""
        self.indexer = Indexer(indexes)
        self.lister = Lister(self.indexer)
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failing_since: float | None = None   # monotonic time of the first error of a run of them
        self._last_error = ""
        self._watching_since: float | None = None  # the current watch opened (after a good list)
        self._stalled = ""                          # the last stall, until the watch proves itself

    def __repr__(self) -> str:
        parts = [self.kind] + [f"{n}={v}" for n, v in (("namespace", self.namespace),
                                                     ("labels", self.label_selector),
                                                     ("fields", self.field_selector)) if v]
        return f"Informer({', '.join(parts)})"

    # ------------------------------------------------------------ reading (see Lister: read-only)

    def get(self, key: Key) -> Message | None:
        return self.indexer.get(key)

    def list(self) -> list[Message]:
        return self.indexer.values()

    def keys(self) -> list[Key]:
        return self.indexer.keys()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Return once the first list has filled the cache."""
        await self._synced.wait()

    def problem(self, bound: float, *, now: float | None = None) -> str | None:
        """Why this informer's cache cannot be trusted, once it has been failing
        for more than `bound` seconds; None while it works (or fails only briefly)."""
        now = time.monotonic() if now is None else now
        if self._stalled:
            return self._stalled
        since = self._failing_since
        if since is None:
            return None
        if self._watching_since is not None and now - self._watching_since >= SETTLED_SECONDS:
            self._failing_since = None   # the watch has been open and quiet: it works again
            return None
        if now - since <= bound:
            return None
        return f"{self!r} has not been able to list or watch for more than {bound:.0f}s: {self._last_error}"

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._last_error = str(exc)[:300] or type(exc).__name__

    def _working(self) -> None:
        self._failing_since = None
        self._stalled = ""

    # ------------------------------------------------------------ handlers

    def add_event_handler(self, handler: EventHandler) -> None:
        """Register handler; if the cache is already filled, it hears an add for every object."""
        for fn in (handler.on_add, handler.on_update, handler.on_delete):
            _check_sync(fn)
        self._handlers.append(handler)
        if self.synced and handler.on_add is not None:
            for key in self.indexer.keys():
                self._call(handler.on_add, key, self.indexer.get(key))

    def add_handler(self, fn: Callable[[Key], None]) -> None:
        """`fn(key)` after every add, update and delete of that key."""
        _check_sync(fn)
        self.add_event_handler(EventHandler(on_add=lambda key, obj: fn(key),
                                            on_update=lambda key, old, new: fn(key),
                                            on_delete=lambda key, old: fn(key)))

    def _call(self, fn: Callable | None, *args: object) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # a broken handler must not stop the cache
            log.exception("informer %s: handler failed for %s", self.kind, args[0])

    def _added(self, key: Key, obj: Message) -> None:
        for h in self._handlers:
            self._call(h.on_add, key, obj)

    def _updated(self, key: Key, old: Message, new: Message) -> None:
        for h in self._handlers:
            self._call(h.on_update, key, old, new)

    def _deleted(self, key: Key, old: Message) -> None:
        for h in self._handlers:
            self._call(h.on_delete, key, old)

    # ------------------------------------------------------------ running

    def start(self) -> asyncio.Task:
        """Run in a background task (idempotent); `stop()` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind}")
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            # Cancel until it ends: on 3.11 asyncio.wait_for loses a cancel that
            # arrives just as the watch event it waits for does (the watch goes on).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.5)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """List, then watch; re-list on Gone, a broken stream or silence. Runs until cancelled."""
        failures = 0
        reason = "initial"
        while True:
            try:
                if reason:
                    await self._relist(reason)
                    reason = ""
                failures = 0
                await self._watch()
                # The server closed the stream cleanly: resume from our revision.
            except Gone:
                log.info("informer %s: revision %s compacted; listing again", self.kind, self.resource_version)
                reason = "gone"
            except _Silent:
                log.info("informer %s: watch silent for %.0fs; listing again", self.kind, self.resync_seconds)
                reason = "silent"
            except Exception as exc:  # ApiError, or a bug in a stream: the cache must keep going
                self._failed(exc)
                delay = self.backoff.delay(failures)
                failures += 1
                if isinstance(exc, ApiError):
                    log.warning("informer %s: %s; listing again in %.1fs", self.kind, exc, delay)
                else:
                    log.exception("informer %s: unexpected error; listing again in %.1fs", self.kind, delay)
                reason = "error"
                await asyncio.sleep(delay)

    async def _relist(self, reason: str) -> None:
        items, revision = await self.client.list(self.kind, self.namespace, self.label_selector,
                                                 self.field_selector)
        self.metrics.relists.labels(self.kind, reason).inc()
        self.metrics.last_event.labels(self.kind).set(time.time())
        if self.transform is not None:
            items = [self.transform(obj) for obj in items]
        fresh = {key_of(obj): obj for obj in items}
        self.resource_version = revision
        changes = 0
        for key in [k for k in self.indexer.keys() if k not in fresh]:
            old = self.indexer.pop(key)
            changes += 1
            self._deleted(key, old)
        for key, obj in fresh.items():
            old = self.indexer.get(key)
            if old is not None and old.metadata.resource_version == obj.metadata.resource_version:
                continue
            self.indexer.put(key, obj)
            changes += 1
            if old is None:
                self._added(key, obj)
            else:
                self._updated(key, old, obj)
        if reason == "silent" and changes:
            self.metrics.stalls.labels(self.kind).inc()
            log.warning("informer %s: watch was stalled: the re-list after %.0fs of silence found %d "
                        "change(s) it never delivered", self.kind, self.resync_seconds, changes)
            self._stalled = (f"{self!r}: the watch was stalled: a re-list after {self.resync_seconds:.0f}s of "
                             f"silence found {changes} change(s) it never delivered")
        elif reason == "silent":
            self._stalled = ""
        self._synced.set()

    async def _watch(self) -> None:
        # Bookmarks: an idle watch is told the revision it has reached every 10 s, so it is not
        # taken for a silent one (a re-list after resync_seconds) and resumes from a recent revision.
        stream = self.client.watch(self.kind, self.namespace, self.label_selector, self.field_selector,
                                   resource_version=self.resource_version, bookmarks=True)
        self._watching_since = time.monotonic()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancel (stop()) that arrives together with an event.
                    async with asyncio.timeout(self.resync_seconds):
                        event_type, obj, revision = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise _Silent() from None
                self.metrics.last_event.labels(self.kind).set(time.time())
                self._working()
                if revision:
                    self.resource_version = revision
                if obj is None:  # BOOKMARK: only the revision moves
                    continue
                self.metrics.watch_events.labels(self.kind).inc()
                self._apply(event_type, obj)
        finally:
            self._watching_since = None
            await stream.aclose()

    def _apply(self, event_type: str, obj: Message) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        key = key_of(obj)
        if event_type == "DELETED":
            old = self.indexer.pop(key)
            if old is not None:
                self._deleted(key, old)
            return
        old = self.indexer.put(key, obj)
        if old is None:
            self._added(key, obj)
        else:
            self._updated(key, old, obj)


def _canonical_kind(kind: str) -> str:
    try:
        return kinds.kind_named(kind).name
    except kinds.UnknownKind:
        return kinds.kind_for_resource(kind).name


class SharedInformerFactory:
    """One informer per (kind, namespace, label selector, field selector) per
    process, however many controllers ask for it - one watch instead of one
    per controller. `informer()` before or after `start()`: start is
    idempotent and starts whatever is new."""

    def __init__(self, client: ListWatcher, *, metrics: ControllerMetrics | None = None,
                 resync_seconds: float = DEFAULT_RESYNC_SECONDS,
                 backoff: Backoff = Backoff(initial=0.2, maximum=5.0)) -> None:
        self.client = client
        self.metrics = metrics or ControllerMetrics()
        self.resync_seconds = resync_seconds
        self.backoff = backoff
        self._informers: dict[tuple, Informer] = {}

    def informer(self, kind: str, *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "", transform: Callable[[Message], Message] | None = None) -> Informer:
        """The shared informer; one with a `transform` is shared only with those asking for the same one."""
        name = _canonical_kind(kind)
        key = (name, namespace, label_selector, field_selector, transform)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, name, namespace=namespace,
                                            label_selector=label_selector, field_selector=field_selector,
                                            resync_seconds=self.resync_seconds, backoff=self.backoff,
                                            metrics=self.metrics, transform=transform)
        return self._informers[key]

    def lister(self, kind: str, **selectors: str) -> Lister:
        return self.informer(kind, **selectors).lister

    async def release(self, informer: Informer) -> None:
        """Stop an informer nobody needs any more and forget it (the agent's
        per-object ConfigMap/Secret watches end with the last pod naming them)."""
        for key, known in list(self._informers.items()):
            if known is informer:
                del self._informers[key]
        await informer.stop()

    def problems(self, bound: float = READY_BOUND_SECONDS) -> list[str]:
        """Each informer's `problem(bound)`: what makes this process not ready."""
        return [p for i in list(self._informers.values()) if (p := i.problem(bound)) is not None]

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
