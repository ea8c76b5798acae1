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

Before node pressure, each pass evicts every pod over its own local-storage
limits (kubelet's localStorageEviction): an emptyDir (not medium Memory) using
more than its `sizeLimit`; a pod whose containers' writable layers plus
emptyDirs use more than the sum of its containers'
`resources.limits.ephemeral-storage` (of those that have one); a
container whose writable layer uses more than its own limit — with kubelet's
messages. Such a pass evicts nothing for node pressure (kubelet returns too).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from agent.pressure import Observation, Threshold, conditions
from agent.runtime.linux.fsusage import disk_usage
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
        """Evict the pods over their local-storage limits, or else one pod if the
        node is under memory or disk pressure; returns the (first) uid evicted."""
        over = await self.local_storage_once()
        if over:
            return over[0]
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
                    stats = await self.runtime.stats(cr.current.id, filesystem=resource != "memory")
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


    async def local_storage_once(self) -> list[str]:
        """Evict every pod over its emptyDir sizeLimit or ephemeral-storage limits; their uids."""
        evicted = []
        for uid, rec in list(self.workers.records.items()):
            pod = self.workers._desired(uid)
            if pod is None or rec.released or rec.evicted is not None:
                continue
            message = await self._over_local_limit(pod, rec)
            if message:
                log.warning("evicting pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, message)
                self.workers.evict(uid, message)
                evicted.append(uid)
        return evicted

    async def _over_local_limit(self, pod, rec) -> str | None:
        """kubelet's message for the first local-storage limit the pod exceeds, in its
        order (emptyDir, pod, container), or None."""
        limits = {c.name: c.resources.limits.get("ephemeral-storage", "") for c in pod.spec.containers}
        sized = [v for v in pod.spec.volumes if v.HasField("empty_dir") and v.empty_dir.medium != "Memory"]
        if not any(limits.values()):
            # No container limit to count them against: only an emptyDir with its own
            # sizeLimit can be over, so the others' trees are not walked (every period).
            sized = [v for v in sized if v.empty_dir.size_limit]
            if not sized:
                return None
        volumes_used = 0
        for volume in sized:
            used = (await asyncio.to_thread(disk_usage, rec.paths.volume_dir(volume.name)))[0]
            volumes_used += used
            limit = _bytes(volume.empty_dir.size_limit)
            if limit is not None and used > limit:
                return f'Usage of EmptyDir volume "{volume.name}" exceeds the limit "{volume.empty_dir.size_limit}". '
        used_by: dict[str, int] = {}
        for name, cr in rec.containers.items():
            if cr.current is None or cr.current.state is State.EXITED:
                continue
            try:
                used_by[name] = (await self.runtime.stats(cr.current.id)).fs_usage_bytes
            except Exception:  # gone meanwhile
                continue
        parsed = {name: _bytes(value) for name, value in limits.items()}
        if any(v is not None for v in parsed.values()):   # as kubelet's PodLimits: the containers' that have one
            total = sum(v for v in parsed.values() if v is not None)
            if sum(used_by.values()) + volumes_used > total:
                quantity = _quantity_text(total)
                return f"Pod ephemeral local storage usage exceeds the total limit of containers {quantity}. "
        for name, used in used_by.items():
            limit = parsed.get(name)
            if limit is not None and used > limit:
                return f'Container {name} exceeded its local ephemeral storage limit "{limits[name]}". '
        return None


def _bytes(value: str) -> int | None:
    try:
        return int(parse_quantity(value)) if value else None
    except QuantityError:
        return None


def _quantity_text(n: int) -> str:
    """kubelet prints the summed limit as a resource.Quantity: the largest binary suffix that divides it."""
    for suffix, size in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20),
                         ("Ki", 1 << 10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _ki(value) -> str:
    return f"{value // 1024}Ki" if isinstance(value, int) and value else str(value or 0)
