"""The controller shape every controller in Skiff has (sample-controller's):

    informer handlers ─► enqueue(key) ─► WorkQueue ─► process_next ─► reconcile(key)
      (primary kind; owners of            ▲                              │
       changed dependents)                │ transient error: back-off ◄──┤
                                          │ requeue after N s        ◄───┤ (reconcile returns N)
                                          └──────────────────────────────┘ PermanentError: a Warning
                                                                           Event, forget, no retry
`reconcile(key)` reads the current state from listers (read-only: copy before
changing) and writes through the API client; it is idempotent, so running it
again for nothing is harmless and missing a notification never is. It returns
None, or seconds after which to look again (level-triggered polling, e.g. a
heartbeat deadline).

A reconcile that raises retries the key with per-key exponential back-off;
one that raises `PermanentError` (the object's spec can never work as written)
records a Warning Event on the object through the injected recorder and is not
retried until the object changes - a bad spec never makes a hot loop.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Hashable, Protocol

from google.protobuf.message import Message

from skiff.client import ApiError
from skiff.controller.informer import EventHandler, Informer
from skiff.controller.lister import Key, key_of, key_text
from skiff.controller.metrics import ControllerMetrics
from skiff.controller.workqueue import DEFAULT_BACKOFF, ShutDown, WorkQueue
from skiff.retry import Backoff

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """Raised by reconcile when retrying cannot help (a bad spec). `obj` is the
    object the Warning Event is about; `reason` its short CamelCase reason."""

    def __init__(self, message: str, *, obj: Message | None = None, reason: str = "InvalidSpec") -> None:
        super().__init__(message)
        self.obj, self.reason = obj, reason


class EventRecorder(Protocol):
    """controlplane.events.EventRecorder, or any stand-in."""

    async def record(self, obj: Message, *, type_: str, reason: str, message: str) -> None: ...


def controller_of(obj: Message) -> tuple[str, str] | None:
    """(kind, name) of obj's managing owner (the ownerReference with controller=true)."""
    for ref in getattr(obj.metadata, "owner_references", ()):
        if ref.controller:
            return ref.kind, ref.name
    return None


class Controller:
    """Subclasses implement `reconcile(key)` and, in __init__, register handlers
    on the informers they use (`watch(informer)`, `watch_dependents(...)`)."""

    name = "controller"
    workers = 1   # None: a worker per key (the agent's one loop per pod)

    def __init__(self, *, name: str | None = None, workers: int | None | str = "default",
                 backoff: Backoff = DEFAULT_BACKOFF, recorder: EventRecorder | None = None,
                 metrics: ControllerMetrics | None = None) -> None:
        if name is not None:
            self.name = name
        if workers != "default":
            self.workers = workers
        self.recorder = recorder
        self.queue: WorkQueue = WorkQueue(self.name, backoff=backoff, metrics=metrics)
        self.informers: list[Informer] = []

    # ------------------------------------------------------------ wiring

    def watch(self, informer: Informer) -> Informer:
        """Enqueue the key of every change of informer's kind (the primary kind)."""
        informer.add_handler(self.enqueue)
        self.uses(informer)
        return informer

    def uses(self, informer: Informer) -> Informer:
        """Wait for informer's first list before processing (a secondary kind read by reconcile)."""
        if informer not in self.informers:
            self.informers.append(informer)
        return informer

    def watch_dependents(self, informer: Informer, *, owner_kind: str,
                         owners: Informer | None = None) -> Informer:
        """On every change of a dependent (say a Pod), enqueue its controlling
        owner of `owner_kind` (say a ReplicaSet): the old owner and the new
        one on an update (an adoption or release moves it)."""
        def changed(key: Key, *objs: Message) -> None:
            for obj in objs:
                self.enqueue_owner(obj, owner_kind=owner_kind, owners=owners)

        informer.add_event_handler(EventHandler(on_add=changed, on_update=changed, on_delete=changed))
        self.uses(informer)
        return informer

    def enqueue_owner(self, obj: Message, *, owner_kind: str, owners: Informer | None = None) -> None:
        """Enqueue obj's controlling owner (ownerReference with controller=true)
        if it is of `owner_kind` - same namespace, by name. With `owners` (the
        owner kind's informer), only an owner whose uid matches the reference
        (a reference to a deleted owner of the same name enqueues nothing; a
        new owner not yet cached gets its own add)."""
        for ref in getattr(obj.metadata, "owner_references", ()):
            if not ref.controller or ref.kind != owner_kind:
                continue
            key = (obj.metadata.namespace, ref.name)
            if owners is not None:
                owner = owners.get(key)
                if owner is None or owner.metadata.uid != ref.uid:
                    return
            self.enqueue(key)
            return

    # ------------------------------------------------------------ queue

    def enqueue(self, key: Hashable) -> None:
        self.queue.add(key)

    def enqueue_object(self, obj: Message) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, key: Hashable, seconds: float) -> None:
        self.queue.add_after(key, seconds)

    # ------------------------------------------------------------ work

    async def reconcile(self, key: Hashable) -> float | None:
        raise NotImplementedError

    async def process_next(self) -> None:
        """Take one key, reconcile it, and settle its back-off. Raises ShutDown."""
        key = await self.queue.get()
        await self._process(key)

    async def _process(self, key: Hashable) -> None:
        try:
            after = await self.reconcile(key)
            self.queue.forget(key)
            if after is not None:
                self.queue.add_after(key, after)
        except asyncio.CancelledError:
            raise
        except PermanentError as exc:
            self.queue.forget(key)
            log.warning("%s: %s: %s (not retried until it changes)", self.name, self.describe_key(key), exc)
            if self.recorder is not None and exc.obj is not None:
                await self.recorder.record(exc.obj, type_="Warning", reason=exc.reason, message=str(exc))
        except Exception as exc:
            delay = self.queue.add_rate_limited(key)
            log.warning("%s: reconcile %s failed: %s; retrying in %.1fs", self.name, self.describe_key(key),
                        exc or type(exc).__name__, delay, exc_info=not _expected(exc))
        finally:
            self.queue.done(key)

    def describe_key(self, key: Hashable) -> str:
        """How logs name a key ("namespace/name" by default)."""
        return _text(key)

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self.informers))

    async def started(self) -> list[asyncio.Task]:
        """Tasks a controller runs beside its workers once synced (periodic work); none by default."""
        return []

    async def run(self) -> None:
        """Start the informers used (idempotent), wait for their first lists,
        then work until cancelled. Safe to run again after a cancel (a leader
        that lost and regained its lease)."""
        for informer in self.informers:
            informer.start()
        await self.wait_synced()
        tasks = await self.started()
        if self.workers is None:
            tasks.append(asyncio.create_task(self._dispatch(), name=f"{self.name}-dispatch"))
        else:
            tasks += [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                      for i in range(self.workers)]
        try:
            await asyncio.gather(*tasks)
        except ShutDown:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            await self.process_next()

    async def _dispatch(self) -> None:
        """A task per key taken (the queue still keeps each key to one at a time)."""
        running: set[asyncio.Task] = set()
        try:
            while True:
                key = await self.queue.get()
                task = asyncio.create_task(self._process(key), name=f"{self.name}-{_text(key)}")
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


def _text(key: Hashable) -> str:
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(p, str) for p in key):
        return key_text(key)
    return str(key)


def _expected(exc: Exception) -> bool:
    """API errors are the expected transient failures; anything else gets a traceback."""
    return isinstance(exc, ApiError)
