"""Pod garbage collection: pods bound to a node that no longer exists are
removed (force, grace 0), as Kubernetes' PodGC does - nobody is left to stop
their containers and confirm the deletion.

A node can be missing briefly (a test that binds before registering, an agent
re-registering), so a pod is removed only after its node has been missing for
`quarantine_seconds` as seen by this controller: reconcile asks to look again
when the quarantine ends. A deleted node wakes its pods (the Pod informer's
spec.nodeName index). The clock is injected for tests.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from google.protobuf.message import Message

from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of

log = logging.getLogger(__name__)


class PodGcController(Controller):
    name = "podgc"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, quarantine_seconds: float = 40.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.quarantine_seconds = quarantine_seconds
        self.clock = clock
        self.pods = self.watch(factory.informer("Pod"))
        self.nodes = self.uses(factory.informer("Node"))
        self.nodes.add_event_handler(EventHandler(on_delete=self._node_deleted))
        self._missing_since: dict[str, float] = {}

    def _node_deleted(self, key: Key, node: Message) -> None:
        for pod in self.pods.lister.on_node(node.metadata.name):
            self.enqueue(key_of(pod))

    def _missing_for(self, node_name: str) -> float | None:
        """Seconds the node has been missing (None: it exists)."""
        if self.nodes.get(("", node_name)) is not None:
            self._missing_since.pop(node_name, None)
            return None
        return self.clock() - self._missing_since.setdefault(node_name, self.clock())

    async def reconcile(self, key: Key) -> float | None:
        pod = self.pods.get(key)
        if pod is None or not pod.spec.node_name:
            return None
        missing = self._missing_for(pod.spec.node_name)
        if missing is None:
            return None
        if missing < self.quarantine_seconds:
            return self.quarantine_seconds - missing
        try:
            await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0,
                                     precondition_uid=pod.metadata.uid)
            log.info("deleted pod %s/%s: its node %s no longer exists", *key, pod.spec.node_name)
        except (NotFound, Conflict):
            pass  # gone already, or a new pod of that name
        return None
