"""Leader election over a Lease object, so several control planes can run
against one etcd and only one schedules and runs controllers at a time.

Shape of client-go's leaderelection: every `retry_seconds` try to acquire or
renew the Lease `skiff-system/skiff-controlplane` with compare-and-swap; the
holder renews it, others take it over only when its renewTime is older than
leaseDurationSeconds. While leading, `on_leading()` runs in a task; losing the
lease cancels it. A clean stop releases the lease so a standby takes over at
once. The API server itself runs on every replica (it is stateless).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Awaitable, Callable

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import AlreadyExists, ApiClient, ApiError, Conflict, NotFound

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "skiff-system"
LEASE_NAME = "skiff-controlplane"


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(self, *, client: ApiClient, identity: str, lease_seconds: float = 15.0,
                 retry_seconds: float | None = None, clock: Callable[[], float] = time.time,
                 namespace: str = LEASE_NAMESPACE, name: str = LEASE_NAME) -> None:
        self.client = client
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds if retry_seconds is not None else max(0.2, lease_seconds / 3)
        self.clock = clock
        self.namespace, self.name = namespace, name
        self.leading = False

    def _lease(self, *, previous: types_pb2.Lease | None) -> types_pb2.Lease:
        lease = meta.copy(previous) if previous is not None else types_pb2.Lease()
        lease.metadata.name, lease.metadata.namespace = self.name, self.namespace
        now = meta.timestamp(self.clock())
        spec = lease.spec
        if spec.holder_identity != self.identity:
            spec.acquire_time.CopyFrom(now)
            spec.lease_transitions += 1 if previous is not None else 0
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = max(1, int(round(self.lease_seconds)))
        spec.renew_time.CopyFrom(now)
        return lease

    async def try_acquire_or_renew(self) -> bool:
        """One round; True when this process holds the lease afterwards."""
        try:
            current = await self.client.get("Lease", self.name, self.namespace)
        except NotFound:
            try:
                await self.client.create(self._lease(previous=None))
                return True
            except (AlreadyExists, Conflict):
                return False
        spec = current.spec
        expired = (not spec.holder_identity or
                   self.clock() - meta.seconds(spec.renew_time) > spec.lease_duration_seconds)
        if spec.holder_identity != self.identity and not expired:
            return False
        try:
            await self.client.update(self._lease(previous=current))  # CAS on the version we read
            return True
        except (Conflict, NotFound):
            return False

    async def release(self) -> None:
        try:
            current = await self.client.get("Lease", self.name, self.namespace)
            if current.spec.holder_identity != self.identity:
                return
            released = meta.copy(current)
            released.spec.holder_identity = ""
            await self.client.update(released)
        except ApiError as exc:
            log.info("could not release the leader lease: %s", exc)

    async def run(self, on_leading: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; run on_leading() while holding the lease."""
        task: asyncio.Task | None = None
        last_renewed = float("-inf")
        try:
            while True:
                try:
                    held = await self.try_acquire_or_renew()
                except ApiError as exc:
                    log.warning("leader election: %s", exc)
                    # A blip is not a loss: the lease is ours until it expires (with a margin).
                    held = task is not None and self.clock() - last_renewed < self.lease_seconds * 2 / 3
                else:
                    if held:
                        last_renewed = self.clock()
                if held and task is None:
                    log.info("became leader (%s)", self.identity)
                    self.leading = True
                    task = asyncio.create_task(on_leading(), name="leading")
                elif not held and task is not None:
                    log.warning("lost the leader lease; stopping scheduler and controllers")
                    self.leading = False
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    task = None
                if task is not None and task.done():
                    task.result()  # a crashed component ends the process, loudly
                await asyncio.sleep(self.retry_seconds)
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await self.release()
            self.leading = False
