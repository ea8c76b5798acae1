"""The one retry policy: exponential back-off with full jitter.

Used by every loop that talks over the network (agent → control plane,
control plane → etcd, controllers' requeues) so the policy lives in one place.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.maximum, self.initial * self.factor ** attempt)
        return random.uniform(0, ceiling) if self.jitter else ceiling


async def retry_async(fn: Callable[[], Awaitable[T]], *, retry_on: tuple[type[BaseException], ...],
                      backoff: Backoff = Backoff(), attempts: int | None = None,
                      on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """Call fn until it succeeds; retry only on `retry_on` errors; give up after
    `attempts` tries (None: never)."""
    attempt = 0
    while True:
        try:
            return await fn()
        except retry_on as exc:
            if attempts is not None and attempt + 1 >= attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
