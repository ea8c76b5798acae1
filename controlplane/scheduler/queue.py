"""The scheduling queue, as kube-scheduler's PriorityQueue:

    add ──► activeQ (heap: higher priority first, then the earlier added) ──► pop ──► one cycle
               ▲  ▲                                                                │
               │  └── backoffQ (1 s, doubling per attempt, at most 10 s) ◄─ failed while a move
               │                  flushed each second when expired          request happened, or error
               └──── unschedulable set ◄──────────────────────────────────── fit nowhere
                      moved out by cluster events that may make pods fit (node added or
                      changed, pod deleted - `move_all`), not by a timer; a pod left there
                      5 minutes is moved anyway (Kubernetes' podMaxInUnschedulablePodsDuration)

A pod that failed while a move request happened during its cycle goes to the
backoff queue instead of the unschedulable set: the event may have been the one
it waited for. Keys are (namespace, name); the clock is injected.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Callable, Hashable

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
MAX_UNSCHEDULABLE_SECONDS = 300.0


@dataclass
class QueuedPod:
    key: Hashable
    priority: int
    added: float            # when it first entered the queue (activeQ order among equals)
    attempts: int = 0
    failed_at: float = 0.0  # the last failed attempt

    def backoff(self, initial: float, maximum: float) -> float:
        if self.attempts <= 0:
            return 0.0
        return min(initial * 2 ** (self.attempts - 1), maximum)


class SchedulingQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 initial_backoff: float = INITIAL_BACKOFF_SECONDS, max_backoff: float = MAX_BACKOFF_SECONDS,
                 max_unschedulable: float = MAX_UNSCHEDULABLE_SECONDS) -> None:
        self.clock = clock
        self.initial_backoff, self.max_backoff, self.max_unschedulable = initial_backoff, max_backoff, max_unschedulable
        self._active: list[tuple[int, float, int, Hashable]] = []
        self._backoff: list[tuple[float, int, Hashable]] = []
        self._pods: dict[Hashable, QueuedPod] = {}     # every pod the queue holds, wherever
        self._where: dict[Hashable, str] = {}          # key -> "active" | "backoff" | "unschedulable" | "flight"
        self._parked: dict[Hashable, None] = {}        # the "unschedulable" keys, in parking order (move_all)
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self.scheduling_cycle = 0
        self._move_request_cycle = -1

    # ------------------------------------------------------------ views (tests, metrics)

    def where(self, key: Hashable) -> str | None:
        return self._where.get(key)

    def pending(self) -> dict[str, int]:
        counts = {"active": 0, "backoff": 0, "unschedulable": 0, "flight": 0}
        for place in self._where.values():
            counts[place] += 1
        return counts

    # ------------------------------------------------------------ adds

    def add(self, key: Hashable, priority: int = 0) -> None:
        """A pod that needs scheduling (new, or changed). A pod already queued
        keeps its place, except that a change moves it out of the unschedulable set."""
        pod = self._pods.get(key)
        if pod is None:
            self._pods[key] = pod = QueuedPod(key, priority, self.clock())
            self._to_active(pod)
            return
        pod.priority = priority
        if self._where.get(key) == "unschedulable":
            self._move(pod)

    def delete(self, key: Hashable) -> None:
        self._pods.pop(key, None)
        self._parked.pop(key, None)
        self._where.pop(key, None)   # heap entries of a deleted key are skipped when reached

    def _place(self, key: Hashable, place: str) -> None:
        self._where[key] = place
        if place == "unschedulable":
            self._parked[key] = None
        else:
            self._parked.pop(key, None)

    def _to_active(self, pod: QueuedPod) -> None:
        self._place(pod.key, "active")
        heapq.heappush(self._active, (-pod.priority, pod.added, next(self._seq), pod.key))
        self._ready.set()

    def _to_backoff(self, pod: QueuedPod) -> None:
        self._place(pod.key, "backoff")
        expiry = pod.failed_at + pod.backoff(self.initial_backoff, self.max_backoff)
        heapq.heappush(self._backoff, (expiry, next(self._seq), pod.key))

    def _move(self, pod: QueuedPod) -> None:
        if pod.failed_at + pod.backoff(self.initial_backoff, self.max_backoff) > self.clock():
            self._to_backoff(pod)
        else:
            self._to_active(pod)

    # ------------------------------------------------------------ the cycle

    async def pop(self) -> Hashable:
        while True:
            while self._active:
                _, _, _, key = heapq.heappop(self._active)
                if self._where.get(key) == "active":
                    self._place(key, "flight")
                    self.scheduling_cycle += 1
                    return key
            self._ready.clear()
            await self._ready.wait()

    def cycle_of(self) -> int:
        return self.scheduling_cycle

    def done(self, key: Hashable) -> None:
        """Scheduled (or no longer wanting scheduling): the queue forgets it."""
        self.delete(key)

    def unschedulable(self, key: Hashable, cycle: int) -> None:
        """It fit nowhere in `cycle`: park it, unless a move request came meanwhile (then back off)."""
        pod = self._pods.get(key)
        if pod is None or self._where.get(key) != "flight":
            return
        pod.attempts += 1
        pod.failed_at = self.clock()
        if self._move_request_cycle >= cycle:
            self._to_backoff(pod)
        else:
            self._place(key, "unschedulable")

    def error(self, key: Hashable) -> None:
        """The cycle failed (an API error): try again after the back-off."""
        pod = self._pods.get(key)
        if pod is None or self._where.get(key) != "flight":
            return
        pod.attempts += 1
        pod.failed_at = self.clock()
        self._to_backoff(pod)

    # ------------------------------------------------------------ events and flushes

    def move_all(self) -> int:
        """A cluster event that may make parked pods fit: move them to active (or backoff)."""
        self._move_request_cycle = self.scheduling_cycle
        parked = [self._pods[k] for k in self._parked]
        for pod in parked:
            self._move(pod)
        return len(parked)

    def flush_backoff_completed(self) -> None:
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if self._where.get(key) == "backoff":
                self._to_active(self._pods[key])

    def flush_unschedulable_leftover(self) -> None:
        now = self.clock()
        for key in list(self._parked):
            pod = self._pods[key]
            if now - pod.failed_at >= self.max_unschedulable:
                self._move(pod)
