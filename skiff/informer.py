"""An informer: an in-memory cache of one kind, kept current by list + watch.

The shape is client-go's: list the objects (remember the revision the list was
read at), then watch from that revision. When the watch revision has been
compacted (`Gone`) or the stream breaks, list again, with back-off from
`skiff.retry`, and diff the new list against the cache so that objects deleted
meanwhile are noticed.

Handlers are level-triggered: they are called with a key `(namespace, name)`
(namespace "" for cluster-scoped kinds) and re-read the current state from the
cache with `get(key)` - never trusting the event that woke them. This is what
the node agent's pod workers and the control plane's controllers queue.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from google.protobuf.message import Message

from skiff.client import ApiClient, ApiError, Gone
from skiff.retry import Backoff

log = logging.getLogger(__name__)

Key = tuple[str, str]
Handler = Callable[[Key], Awaitable[None]]


def key_of(obj: Message) -> Key:
    return obj.metadata.namespace, obj.metadata.name


class Informer:
    """Cache of `kind` objects matching the selectors, with change handlers."""

    def __init__(self, client: ApiClient, kind: str, namespace: str = "", field_selector: str = "",
                 label_selector: str = "", *, backoff: Backoff = Backoff(initial=0.2, maximum=5.0)) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.backoff = backoff
        self.resource_version = ""
        self._cache: dict[Key, Message] = {}
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ reading

    def get(self, key: Key) -> Message | None:
        """The cached object (treat it as read-only: copy before changing)."""
        return self._cache.get(key)

    def list(self) -> list[Message]:
        return list(self._cache.values())

    def keys(self) -> list[Key]:
        return list(self._cache.keys())

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Return once the first list has filled the cache."""
        await self._synced.wait()

    # ------------------------------------------------------------ handlers

    def add_handler(self, handler: Handler) -> None:
        """`handler(key)` is awaited after every change of that key."""
        self._handlers.append(handler)

    async def _notify(self, key: Key) -> None:
        for handler in self._handlers:
            try:
                await handler(key)
            except Exception:  # a broken handler must not stop the cache
                log.exception("informer %s: handler failed for %s/%s", self.kind, *key)

    # ------------------------------------------------------------ running

    def start(self) -> asyncio.Task:
        """Run in a background task; `stop()` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def run(self) -> None:
        """List, then watch; re-list on Gone or a broken stream. Runs until cancelled."""
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                failures = 0
                await self._watch()
                # The server closed the stream cleanly: resume from our revision.
            except Gone:
                log.info("informer %s: revision %s compacted; listing again", self.kind, self.resource_version)
                need_list = True
            except Exception as exc:  # ApiError, or a bug in a stream: the cache must keep going
                delay = self.backoff.delay(failures)
                failures += 1
                if isinstance(exc, ApiError):
                    log.warning("informer %s: %s; retrying in %.1fs", self.kind, exc, delay)
                else:
                    log.exception("informer %s: unexpected error; retrying in %.1fs", self.kind, delay)
                await asyncio.sleep(delay)
                # A long outage may have outlived the revision; resuming raises Gone if so.

    async def _relist(self) -> None:
        items, revision = await self.client.list(self.kind, self.namespace, self.label_selector,
                                                 self.field_selector)
        fresh = {key_of(obj): obj for obj in items}
        changed = [key for key, obj in fresh.items()
                   if key not in self._cache or
                   self._cache[key].metadata.resource_version != obj.metadata.resource_version]
        removed = [key for key in self._cache if key not in fresh]
        self._cache = fresh
        self.resource_version = revision
        self._synced.set()
        for key in changed + removed:
            await self._notify(key)

    async def _watch(self) -> None:
        async for event_type, obj, revision in self.client.watch(
                self.kind, self.namespace, self.label_selector, self.field_selector,
                resource_version=self.resource_version):
            if revision:
                self.resource_version = revision
            if obj is None:  # BOOKMARK
                continue
            key = key_of(obj)
            if event_type == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            await self._notify(key)
