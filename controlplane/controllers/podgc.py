"""Pod garbage collection: pods bound to a node that no longer exists are
removed (force, grace 0), as Kubernetes' PodGC does - nobody is left to stop
their containers and confirm the deletion.

A node can be missing briefly (a test that binds before registering, an agent
re-registering), so a pod is removed only after its node has been missing for
`quarantine_seconds` as seen by this controller. The clock is injected for tests.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from controlplane.controllers.base import Controller
from skiff.client import ApiClient, Conflict, NotFound
from skiff.informer import Informer, Key

log = logging.getLogger(__name__)


class PodGcController(Controller):
    def __init__(self, *, client: ApiClient, quarantine_seconds: float = 40.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.client = client
        self.quarantine_seconds = quarantine_seconds
        self.clock = clock
        self.informer = Informer(client, "Pod", field_selector="spec.nodeName!=")
        self.nodes = Informer(client, "Node")
        self._missing_since: dict[str, float] = {}

    async def extra_tasks(self) -> list[asyncio.Task]:
        self.nodes.start()
        await self.nodes.wait_synced()
        return [asyncio.create_task(self._tick(), name="pod-gc-tick")]

    async def _tick(self) -> None:
        try:
            while True:
                for key in self.informer.keys():
                    self.enqueue(key)
                await asyncio.sleep(max(0.5, self.quarantine_seconds / 4))
        finally:
            await self.nodes.stop()

    def _node_missing_long_enough(self, node_name: str) -> bool:
        if self.nodes.get(("", node_name)) is not None:
            self._missing_since.pop(node_name, None)
            return False
        first = self._missing_since.setdefault(node_name, self.clock())
        return self.clock() - first >= self.quarantine_seconds

    async def reconcile(self, key: Key) -> None:
        pod = self.informer.get(key)
        if pod is None or not pod.spec.node_name:
            return
        if not self._node_missing_long_enough(pod.spec.node_name):
            return
        try:
            await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0,
                                     precondition_uid=pod.metadata.uid)
            log.info("deleted pod %s/%s: its node %s no longer exists", *key, pod.spec.node_name)
        except (NotFound, Conflict):
            pass  # gone already, or a new pod of that name
