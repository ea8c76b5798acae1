"""A rate-limited work queue of keys, with client-go's guarantees:

    add(k) ──► dirty ──► queue ──get()──► processing ──done(k)──┐
                 ▲                                              │ re-added while
                 └────────────── back in the queue ◄────────────┘ processing

- A key is in the queue at most once, however often it is added (de-duplication:
  ten changes while it waits are one reconcile).
- A key being processed is never handed to a second worker: re-added meanwhile,
  it is queued again when `done(k)` is called, and processed once more.
- `add_rate_limited(k)` re-adds after the key's next back-off (skiff.retry's,
  exponential with jitter; per key, so one failing object does not slow the
  others); `forget(k)` resets it after a success. `add_after(k, s)` re-adds
  later without counting a failure.
- `shutdown()` wakes every waiting worker: `get()` then raises `ShutDown`.

Keys are hashable values (controllers use `(namespace, name)`, the agent pod uids).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, Hashable, TypeVar

from skiff.controller.metrics import ControllerMetrics
from skiff.retry import Backoff

K = TypeVar("K", bound=Hashable)
DEFAULT_BACKOFF = Backoff(initial=0.2, maximum=30.0)


class ShutDown(Exception):
    """The queue was shut down: the worker should return."""


class WorkQueue(Generic[K]):
    def __init__(self, name: str, *, backoff: Backoff = DEFAULT_BACKOFF,
                 metrics: ControllerMetrics | None = None, clock=time.monotonic) -> None:
        self.name = name
        self.backoff = backoff
        self.clock = clock
        m = metrics or ControllerMetrics()
        self._depth = m.depth.labels(name)
        self._adds = m.adds.labels(name)
        self._retries = m.retries.labels(name)
        self._queue_duration = m.queue_duration.labels(name)
        self._work_duration = m.work_duration.labels(name)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}   # key -> when a worker took it
        self._added_at: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._nonempty = asyncio.Event()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._adds.inc()
        self._dirty.add(key)
        self._added_at.setdefault(key, self.clock())
        if key in self._processing:
            return  # done() puts it back
        self._push(key)

    def _push(self, key: K) -> None:
        self._queue.append(key)
        self._depth.set(len(self._queue))
        self._nonempty.set()

    async def get(self) -> K:
        """The next key; the caller owns it until `done(key)`. Raises ShutDown."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._nonempty.clear()
            await self._nonempty.wait()
        key = self._queue.popleft()
        self._depth.set(len(self._queue))
        now = self.clock()
        self._queue_duration.observe(now - self._added_at.pop(key, now))
        self._processing[key] = now
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        started = self._processing.pop(key, None)
        if started is not None:
            self._work_duration.observe(self.clock() - started)
        if key in self._dirty and not self._shutting_down:
            self._push(key)

    # ------------------------------------------------------------ delays

    def add_after(self, key: K, seconds: float) -> None:
        """Add key after `seconds` (now if <= 0). A later call for the same key
        replaces an earlier pending one only if it is sooner."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        pending = self._timers.get(key)
        if pending is not None and not pending.cancelled() and pending.when() <= when:
            return
        if pending is not None:
            pending.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> float:
        """Re-add after the key's next back-off (a failure); returns the delay."""
        attempt = self._failures.get(key, 0)
        self._failures[key] = attempt + 1
        delay = self.backoff.delay(attempt)
        self._retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the back-off from the beginning."""
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def cancel_after(self, key: K) -> None:
        """Drop a pending add_after for key."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    # ------------------------------------------------------------ end

    def shutdown(self) -> None:
        """Stop handing out keys; waiting and later `get()` calls raise ShutDown."""
        self._shutting_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queue.clear()
        self._dirty.clear()
        self._depth.set(0)
        self._nonempty.set()
