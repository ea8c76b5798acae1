"""The controller shape shared by every controller (sample-controller's):

    informer handler ─► enqueue(key) ─► queue ─► process_next ─► reconcile(key)
                                          ▲                          │ error
                                          └── later, with back-off ◄─┘

The queue carries keys, not objects: reconcile reads the current object from
the informer's cache, so it acts on the newest state and is idempotent. A key
is in the queue at most once; a failing key is retried with skiff.retry's
back-off, a succeeding one has its back-off forgotten.
"""
from __future__ import annotations

import asyncio
import logging

from skiff.informer import Informer, Key
from skiff.retry import Backoff

log = logging.getLogger(__name__)


class Controller:
    """Subclasses set `informer` and implement `reconcile(key)`."""

    informer: Informer

    def __init__(self, *, backoff: Backoff = Backoff(initial=0.2, maximum=30.0)) -> None:
        self.backoff = backoff
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._failures: dict[Key, int] = {}

    async def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    def enqueue(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def _on_change(self, key: Key) -> None:
        self.enqueue(key)

    async def process_next(self) -> None:
        key = await self._queue.get()
        self._queued.discard(key)
        try:
            await self.reconcile(key)
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt = self._failures.get(key, 0)
            self._failures[key] = attempt + 1
            delay = self.backoff.delay(attempt)
            log.warning("%s: reconcile %s failed: %s; retrying in %.1fs", type(self).__name__,
                        "/".join(k for k in key if k), exc, delay)
            asyncio.get_running_loop().call_later(delay, self.enqueue, key)

    async def extra_tasks(self) -> list[asyncio.Task]:
        """Periodic work a controller needs besides its informer (none by default)."""
        return []

    async def run(self) -> None:
        self.informer.add_handler(self._on_change)
        tasks = [self.informer.start()]
        try:
            await self.informer.wait_synced()
            tasks += await self.extra_tasks()
            while True:
                await self.process_next()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
