"""Node lifecycle: a node whose agent stopped heartbeating gets Ready=Unknown,
and its pods Ready=False; a node under pressure is tainted.

Taints by Ready (Kubernetes' TaintBasedEvictions): while Ready is Unknown the
node carries node.kubernetes.io/unreachable:NoExecute, while it is False
node.kubernetes.io/not-ready:NoExecute; both go when Ready is True again. The
taint-eviction controller (tainteviction.py) then deletes the pods whose
toleration of it runs out.

Taints by condition (Kubernetes' TaintNodesByCondition): while the agent
reports MemoryPressure, DiskPressure or PIDPressure True, the node carries
node.kubernetes.io/memory-pressure (disk-pressure, pid-pressure) with effect
NoSchedule, so the scheduler's TaintToleration filter sends new pods
elsewhere; the taint goes when the condition does. Other taints are kept.

The agent renews its Ready condition's lastHeartbeatTime; when that is older
than the grace period (Skiff's default 8 s; Kubernetes' node-monitor-grace-period is 40 s)
this controller sets Ready to Unknown, reason NodeStatusUnknown, so the
scheduler stops placing pods there. Nodes are re-checked every grace/4 seconds
(reconcile asks for it) as well as on every change; a node's pods come from the
shared Pod informer's spec.nodeName index. The clock is injected for tests.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory

log = logging.getLogger(__name__)
REASON = "NodeStatusUnknown"
MESSAGE = "Skiff agent stopped posting node status."
POD_REASON = "NodeNotReady"
POD_MESSAGE = "The pod's node stopped posting status; nothing vouches for the pod's readiness."
CONDITION_TAINTS = {"MemoryPressure": "node.kubernetes.io/memory-pressure",
                    "DiskPressure": "node.kubernetes.io/disk-pressure",
                    "PIDPressure": "node.kubernetes.io/pid-pressure"}
READY_TAINTS = {"Unknown": "node.kubernetes.io/unreachable", "False": "node.kubernetes.io/not-ready"}


def stale_ready(node: types_pb2.Node, *, now: float, grace_seconds: float, not_before: float = 0.0) -> bool:
    """Whether the node's Ready heartbeat is older than the grace period
    (a node that never heartbeated counts from its creation; no heartbeat
    counts as older than `not_before`, when this controller started: as
    Kubernetes' node controller, which times nodes from its own first sight,
    so a control plane restarted after its agents were gives them a grace
    period of their own before tainting their nodes)."""
    ready = meta.get_condition(node.status.conditions, "Ready")
    if ready is not None and ready.status == "Unknown":
        return False  # already marked
    if ready is not None and ready.HasField("last_heartbeat_time"):
        last = meta.seconds(ready.last_heartbeat_time)
    else:
        last = meta.seconds(node.metadata.creation_timestamp)
    return now - max(last, not_before) > grace_seconds


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, grace_seconds: float = 8.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.started_at = clock()
        self.nodes = self.watch(factory.informer("Node"))
        self.pods = self.uses(factory.informer("Pod"))

    @property
    def period(self) -> float:
        return max(0.5, self.grace_seconds / 4)

    async def reconcile(self, key: Key) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        await self._taint_by_conditions(node)
        ready = meta.get_condition(node.status.conditions, "Ready")
        if ready is not None and ready.status == "Unknown":
            await self._mark_pods_not_ready(node.metadata.name)   # again each period: new or restarted ones
            return self.period
        if not stale_ready(node, now=self.clock(), grace_seconds=self.grace_seconds, not_before=self.started_at):
            return self.period
        # Keep the last heartbeat as it was: it tells when the node was last heard of.
        if not await self._set_ready(node, status="Unknown", reason=REASON, message=MESSAGE):
            return self.period  # a heartbeat (or deletion) won the race: the informer brings it
        log.warning("node %s: no heartbeat for more than %.0fs; Ready=Unknown", key[1], self.grace_seconds)
        await self._mark_pods_not_ready(node.metadata.name)
        return self.period   # the status write wakes us again: the taint follows at once

    async def _taint_by_conditions(self, node: types_pb2.Node) -> None:
        """NoSchedule taints for the pressure conditions that are True, none for
        the others; the NoExecute taint for Ready Unknown or False. A taint that
        stays keeps its timeAdded (tolerationSeconds count from it)."""
        want = {}
        for cond_type, key in CONDITION_TAINTS.items():
            cond = meta.get_condition(node.status.conditions, cond_type)
            if cond is not None and cond.status == "True":
                want[key] = "NoSchedule"
        ready = meta.get_condition(node.status.conditions, "Ready")
        if ready is not None and ready.status in READY_TAINTS:
            want[READY_TAINTS[ready.status]] = "NoExecute"
        ours = set(CONDITION_TAINTS.values()) | set(READY_TAINTS.values())
        have = {t.key: t.effect for t in node.spec.taints if t.key in ours}
        if want == have:
            return
        updated = meta.copy(node)
        kept = [t for t in updated.spec.taints if t.key not in ours or want.get(t.key) == t.effect]
        del updated.spec.taints[:]
        updated.spec.taints.extend(kept)
        for key in sorted(set(want) - {t.key for t in kept}):
            updated.spec.taints.add(key=key, effect=want[key]).time_added.CopyFrom(meta.timestamp(self.clock()))
        try:
            await self.client.update(updated)
        except (Conflict, NotFound):
            return   # changed meanwhile: the informer brings it back
        log.info("node %s: taints by condition now %s", node.metadata.name, sorted(want) or "none")

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """Kubernetes' MarkPodsNotReady: nobody vouches for the pods of a node
        that went silent, so their Ready condition turns False (the agent,
        once back, writes the truth again)."""
        for pod in self.pods.lister.on_node(node_name):
            ready = meta.get_condition(pod.status.conditions, "Ready")
            if ready is None or ready.status != "True" or pod.status.phase in ("Succeeded", "Failed"):
                continue
            # Changed meanwhile (False returned): the next tick looks again.
            if await self._set_ready(pod, status="False", reason=POD_REASON, message=POD_MESSAGE):
                log.info("pod %s/%s: Ready=False (node %s not ready)", pod.metadata.namespace,
                         pod.metadata.name, node_name)

    async def _set_ready(self, obj, *, status: str, reason: str, message: str) -> bool:
        """Write obj's (a node's or a pod's) Ready condition; False if obj
        changed or went meanwhile."""
        updated = meta.copy(obj)
        meta.set_condition(updated.status.conditions, type_="Ready", status=status, reason=reason,
                           message=message, now=meta.timestamp(self.clock()))
        try:
            await self.client.update_status(updated)
        except (Conflict, NotFound):
            return False
        return True
