"""The pure parts of keeping a number of pods, shared by the workload
controllers (Kubernetes' `controller_utils.go` and `pod_util.go`):

- which pods count (`is_active`: not finished, not being deleted), which are
  ready and which available (ready for minReadySeconds);
- which to delete first on a scale-down (`deletion_order`);
- creating in slow-start batches (`slow_start`: 1, 2, 4, ... so a template
  the API refuses costs one call, not hundreds);
- `Expectations`: the creations and deletions a controller has asked for but
  not yet seen in its informer, so it does not act twice on a stale cache.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Hashable, Sequence

from proto.skiff.v1 import types_pb2
from skiff.api import meta

TERMINAL_PHASES = ("Succeeded", "Failed")


def is_active(pod: types_pb2.Pod) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return pod.status.phase not in TERMINAL_PHASES and not pod.metadata.HasField("deletion_timestamp")


def ready_condition(pod: types_pb2.Pod):
    return meta.get_condition(pod.status.conditions, "Ready")


def is_ready(pod: types_pb2.Pod) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.status == "True"


def is_available(pod: types_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready, and for at least min_ready_seconds (Kubernetes' IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = meta.seconds(ready_condition(pod).last_transition_time)
    return since > 0 and since + min_ready_seconds <= now


def available_in(pod: types_pb2.Pod, min_ready_seconds: int, now: float) -> float | None:
    """Seconds until a ready pod becomes available (None: not ready, or already)."""
    if not is_ready(pod) or min_ready_seconds <= 0:
        return None
    left = meta.seconds(ready_condition(pod).last_transition_time) + min_ready_seconds - now
    return left if left > 0 else None


# ---------------------------------------------------------------- scale-down order

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _restarts(pod: types_pb2.Pod) -> int:
    return max((c.restart_count for c in pod.status.container_statuses), default=0)


def _deletion_key(pod: types_pb2.Pod, colocated: int) -> tuple:
    ready = is_ready(pod)
    ready_since = meta.seconds(ready_condition(pod).last_transition_time) if ready else 0.0
    created = meta.seconds(pod.metadata.creation_timestamp)
    return (
        1 if pod.spec.node_name else 0,          # unscheduled first
        _PHASE_RANK.get(pod.status.phase, 0),    # pending < unknown < running
        1 if ready else 0,                       # not ready first
        -colocated,                              # doubled up on a node first
        -ready_since,                            # ready more recently first
        -_restarts(pod),                         # more restarts first
        -created if created else -math.inf,      # newer first (no timestamp: first of all)
    )


def deletion_order(pods: Sequence[types_pb2.Pod], related: Sequence[types_pb2.Pod] = ()) -> list[types_pb2.Pod]:
    """`pods` in the order a scale-down deletes them (Kubernetes'
    ActivePodsWithRanks): unscheduled < scheduled; Pending < Unknown < Running;
    not ready < ready; more pods of the same owner(s) on its node first; ready
    for less time first; more restarts first; newer first. `related` are the
    active pods whose placement counts for the doubled-up rank (the pods of
    every ReplicaSet of the same Deployment; default: `pods`)."""
    per_node: dict[str, int] = {}
    for p in related or pods:
        if p.spec.node_name:
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
    return sorted(pods, key=lambda p: _deletion_key(p, per_node.get(p.spec.node_name, 0) if p.spec.node_name else 0))


# ---------------------------------------------------------------- slow start

async def slow_start(count: int, create: Callable[[], Awaitable[None]], *, initial: int = 1) -> tuple[int, Exception | None]:
    """Call `create` `count` times in batches of 1, 2, 4, ... (each batch at
    once); stop after the first batch with a failure. Returns (successes, the
    first error or None); the calls never made are count - successes - failures."""
    done, remaining, batch = 0, count, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(create() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in errors:
            if isinstance(r, asyncio.CancelledError):
                raise r
        done += batch - len(errors)
        if errors:
            return done, errors[0]  # type: ignore[return-value]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return done, None


# ---------------------------------------------------------------- expectations

EXPECTATIONS_TTL = 300.0


@dataclass
class _Expected:
    adds: int = 0
    deletes: int = 0
    deleting: set[str] = field(default_factory=set)  # uids asked to go, for deletions seen
    since: float = 0.0


class Expectations:
    """Per controller key: creations and deletions asked for and not yet
    observed. While any are outstanding the controller does not size its pods
    again (its cache would show too few or too many); after `ttl` seconds an
    unmet expectation is given up, so a lost watch event cannot wedge a key."""

    def __init__(self, *, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._by_key: dict[Hashable, _Expected] = {}

    def satisfied(self, key: Hashable) -> bool:
        e = self._by_key.get(key)
        if e is None:
            return True
        if (e.adds <= 0 and e.deletes <= 0) or self.clock() - e.since > self.ttl:
            return True
        return False

    def expect(self, key: Hashable, *, adds: int = 0, delete_uids: Sequence[str] = ()) -> None:
        self._by_key[key] = _Expected(adds=adds, deletes=len(delete_uids), deleting=set(delete_uids),
                                      since=self.clock())

    def lower_adds(self, key: Hashable, n: int = 1) -> None:
        """n creations will not happen (refused) or were seen."""
        e = self._by_key.get(key)
        if e is not None:
            e.adds -= n

    def deletion_seen(self, key: Hashable, uid: str) -> None:
        e = self._by_key.get(key)
        if e is not None and uid in e.deleting:
            e.deleting.discard(uid)
            e.deletes -= 1

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)
