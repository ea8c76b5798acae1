"""kube-apiserver's max-in-flight filter: how many requests the API serves at once.

At most `readonly` read-only and `mutating` mutating requests are in flight (kube-apiserver's
--max-requests-inflight 400 and --max-mutating-requests-inflight 200); one more is not queued
but refused at once, as Kubernetes refuses it: 429 "Too many requests, please try again later."
with Retry-After: 1 (over gRPC RESOURCE_EXHAUSTED with a `retry-after` trailer), which clients
retry (client-go, kubectl and skiff.client all do). So an overloaded control plane sheds load
it cannot serve in time instead of letting every caller's latency grow without bound.

Long-running requests (watches, exec, attach, port-forward, proxy, followed logs) do not count:
they hold a stream, not a worker. Health checks do not count, nor - on the REST door - the
system:masters group (Kubernetes exempts it, so an administrator can always get in). 0 turns a
limit off. Both doors (gRPC and REST) share one limiter: the limit is the control plane's.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from prometheus_client import Counter, Gauge

READ_ONLY, MUTATING = "readOnly", "mutating"   # Kubernetes' request_kind label values
MESSAGE = "Too many requests, please try again later."
RETRY_AFTER_SECONDS = 1
DEFAULT_READONLY, DEFAULT_MUTATING = 400, 200


class Overloaded(Exception):
    """Refused by the limit: the caller answers 429 (RESOURCE_EXHAUSTED) with Retry-After."""

    def __init__(self, kind: str) -> None:
        super().__init__(MESSAGE)
        self.kind, self.message, self.retry_after = kind, MESSAGE, RETRY_AFTER_SECONDS


class InflightLimits:
    def __init__(self, *, readonly: int = DEFAULT_READONLY, mutating: int = DEFAULT_MUTATING,
                 current: Gauge | None = None, dropped: Counter | None = None) -> None:
        """`current` and `dropped`: kube-apiserver's apiserver_current_inflight_requests and
        apiserver_dropped_requests_total, by request_kind (controlplane/metrics.py)."""
        self.limits = {READ_ONLY: readonly, MUTATING: mutating}
        self.current = {READ_ONLY: 0, MUTATING: 0}
        self._gauge, self._dropped = current, dropped
        if self._gauge is not None:
            for kind in self.limits:
                self._gauge.labels(kind).set(0)

    @contextlib.contextmanager
    def hold(self, *, mutating: bool) -> Iterator[None]:
        """Count one request while it is served; Overloaded if its kind is at the limit."""
        kind = MUTATING if mutating else READ_ONLY
        limit = self.limits[kind]
        if limit and self.current[kind] >= limit:
            if self._dropped is not None:
                self._dropped.labels(kind).inc()
            raise Overloaded(kind)
        self.current[kind] += 1
        if self._gauge is not None:
            self._gauge.labels(kind).set(self.current[kind])
        try:
            yield
        finally:
            self.current[kind] -= 1
            if self._gauge is not None:
                self._gauge.labels(kind).set(self.current[kind])
