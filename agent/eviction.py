"""Eviction under node pressure, in kubelet's order (pkg/kubelet/eviction).

Every period the manager measures the node (agent.pressure); while memory or
disk is under its hard threshold it evicts ONE pod, then looks again at the
next period — as kubelet does, so a single eviction that relieves the node is
the last. Ranking (kubelet's rankMemoryPressure / rankDiskPressure): pods
whose usage exceeds their requests first (a BestEffort pod requests nothing,
so any usage exceeds it), then by how far usage exceeds requests, largest
first. Memory usage is the containers' working set; disk usage their writable
layers. The pod worker does the eviction (`PodWorkers.evict`): containers
stopped at once (a hard threshold has no grace), the pod Failed with reason
`Evicted` and kubelet's message, an `Evicted` warning event.

Not here yet: the node taints that keep the scheduler away while under pressure.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from agent.pressure import Observation, Threshold, conditions
from agent.runtime.interface import State
from skiff.api.quantity import QuantityError, parse_quantity

log = logging.getLogger(__name__)


def _request(pod, resource: str) -> int:
    total = 0
    for c in pod.spec.containers:
        value = c.resources.requests.get(resource) or c.resources.limits.get(resource)
        try:
            total += int(parse_quantity(value)) if value else 0
        except QuantityError:
            pass
    return total


class EvictionManager:
    def __init__(self, *, workers, runtime, observe: Callable[[], Observation], thresholds: dict[str, Threshold],
                 period_seconds: float = 10.0) -> None:
        self.workers, self.runtime = workers, runtime
        self.observe = observe
        self.thresholds = thresholds
        self.period_seconds = period_seconds

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_seconds)
            try:
                await self.check_once()
            except Exception:  # a failed pass must not end eviction for good
                log.exception("eviction check failed")

    async def check_once(self) -> str | None:
        """Evict one pod if the node is under memory or disk pressure; returns its uid."""
        obs = await asyncio.to_thread(self.observe)
        conds = {c.type: c.status for c in conditions(obs, self.thresholds)}
        if conds["MemoryPressure"]:
            resource, threshold = "memory", self.thresholds["memory.available"]
            available = obs.memory_available
        elif conds["DiskPressure"]:
            resource, threshold = "ephemeral-storage", self.thresholds.get("nodefs.available")
            available = obs.nodefs_available
        else:
            return None
        ranked = []
        for uid, rec in list(self.workers.records.items()):
            pod = self.workers._desired(uid)
            if pod is None or rec.released or rec.evicted is not None:
                continue
            usage, heaviest = 0, ("", 0)
            for cr in list(rec.containers.values()) + list(rec.init_containers.values()):
                if cr.current is None or cr.current.state is State.EXITED:
                    continue
                try:
                    stats = await self.runtime.stats(cr.current.id)
                except Exception:  # gone meanwhile
                    continue
                used = stats.memory_working_set_bytes if resource == "memory" else getattr(stats, "fs_usage_bytes", 0)
                usage += used
                if used >= heaviest[1]:
                    heaviest = (cr.current.name, used)
            request = _request(pod, resource)
            ranked.append((usage > request, usage - request, uid, pod, heaviest, request))
        if not ranked:
            return None
        ranked.sort(key=lambda r: (not r[0], -r[1]))
        _, _, uid, pod, (container, used), request = ranked[0]
        limit = threshold.quantity if threshold is not None and threshold.quantity is not None else (
            f"{threshold.percent:g}%" if threshold is not None else "")
        message = (f"The node was low on resource: {resource}. Threshold quantity: {_ki(limit)}, available: "
                   f"{available // 1024}Ki. Container {container} was using {used // 1024}Ki, request is "
                   f"{_ki(request)}, has larger consumption of {resource}.")
        log.warning("evicting pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, message)
        self.workers.evict(uid, message)
        return uid


def _ki(value) -> str:
    return f"{value // 1024}Ki" if isinstance(value, int) and value else str(value or 0)
