"""Taint eviction (Kubernetes' taint manager, NoExecutTaintManager): a pod on
a node with NoExecute taints is deleted once it no longer tolerates them.

For each pod bound to a node (the Node informer wakes a node's pods through
the Pod informer's spec.nodeName index):

    no NoExecute taint                      → nothing
    a NoExecute taint it does not tolerate  → delete now
    all tolerated, some for tolerationSeconds → delete when the shortest runs
                                              out, counted from the taint's
                                              timeAdded; look again then
    all tolerated forever                   → nothing

The delete is graceful (the pod's own grace period): a silent node's agent
cannot confirm it, so the pod stays Terminating until the agent is back and
kills it (or the node is deleted and pod GC removes it); the pod's controller
does not count a terminating pod and creates a replacement at once. The clock
is injected for tests (wall time: taints carry timestamps).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from google.protobuf.message import Message

from controlplane.scheduler.plugins.taint_toleration import tolerates
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of

log = logging.getLogger(__name__)


def eviction_delay(pod: types_pb2.Pod, node: types_pb2.Node, *, now: float) -> float | None:
    """Seconds until the pod must leave the node (0: now), None: it may stay."""
    deadline = None
    for taint in node.spec.taints:
        if taint.effect != "NoExecute":
            continue
        matching = [t for t in pod.spec.tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        if any(not t.HasField("toleration_seconds") for t in matching):
            continue   # one toleration without a limit: tolerated forever
        added = meta.seconds(taint.time_added) if taint.HasField("time_added") else now
        until = added + max(0, min(t.toleration_seconds for t in matching))
        deadline = until if deadline is None else min(deadline, until)
    return None if deadline is None else max(0.0, deadline - now)


class TaintEvictionController(Controller):
    name = "tainteviction"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.clock = clock
        self.pods = self.watch(factory.informer("Pod"))
        self.nodes = self.uses(factory.informer("Node"))
        self.nodes.add_event_handler(EventHandler(on_add=self._node_changed, on_update=self._node_changed))

    def _node_changed(self, key: Key, *objs: Message) -> None:
        for pod in self.pods.lister.on_node(objs[-1].metadata.name):
            self.enqueue(key_of(pod))

    async def reconcile(self, key: Key) -> float | None:
        pod = self.pods.get(key)
        if pod is None or not pod.spec.node_name or pod.metadata.HasField("deletion_timestamp"):
            return None
        if pod.status.phase in ("Succeeded", "Failed"):
            return None
        node = self.nodes.get(("", pod.spec.node_name))
        if node is None:
            return None   # pod GC's business
        delay = eviction_delay(pod, node, now=self.clock())
        if delay is None:
            return None
        if delay > 0:
            return delay
        try:
            await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                     precondition_uid=pod.metadata.uid)
        except (NotFound, Conflict):
            return None
        log.info("pod %s/%s: evicted from node %s (NoExecute taint no longer tolerated: %s)", *key,
                 node.metadata.name, ", ".join(f"{t.key}:{t.effect}" for t in node.spec.taints
                                               if t.effect == "NoExecute"))
        return None
