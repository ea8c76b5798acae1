"""Writes a pod's status to the API when, and only when, it changed.

The pod worker computes the status from its record (agent.status) and hands
it here. A write is a compare-and-swap on the pod's resourceVersion; on a
conflict the pod is read again and the same status put on the fresh copy. The
informer's cache may lag behind our own last write, so that write is
remembered: a status equal to it is not sent again. Also keeps the
pods-by-phase gauge and the pod start latency histogram.
"""
from __future__ import annotations

from typing import Any

from agent.clock import Clock
from agent.metrics import AgentMetrics
from agent.records import PodRecord, ProbeResults, container_views
from agent.status import PodCondition, pod_status, same_status
from proto.skiff.v1 import types_pb2
from skiff.client import ApiError, Conflict, NotFound

CONFLICT_ATTEMPTS = 5


class StatusWriter:
    def __init__(self, *, client: Any, node_name: str, node_ip: str, clock: Clock, metrics: AgentMetrics,
                 probes: ProbeResults | None = None) -> None:
        self.client = client
        self.probes = probes
        self.node_name, self.node_ip = node_name, node_ip
        self.clock = clock
        self.metrics = metrics
        # uid -> (resourceVersion, status, the stored pod) of our last write
        self._written: dict[str, tuple[int, types_pb2.PodStatus, types_pb2.Pod]] = {}
        self._phases: dict[str, str] = {}

    def status_of(self, pod: types_pb2.Pod, rec: PodRecord) -> types_pb2.PodStatus:
        extra = ()
        if rec.setup_error is not None:
            extra = (PodCondition("PodReadyToStartContainers", False, *rec.setup_error),)
        status = pod_status(pod=pod, views=container_views(pod, rec, probes=self.probes), host_ip=self.node_ip,
                            pod_ip=rec.pod_ip, now=self.clock.now(), extra_conditions=extra,
                            init_views=container_views(pod, rec, init=True))
        if rec.evicted is not None:   # kubelet's eviction: the pod Failed, whatever its containers say
            status.phase, status.reason, status.message = "Failed", "Evicted", rec.evicted
        return status

    async def write(self, pod: types_pb2.Pod, rec: PodRecord) -> types_pb2.PodStatus | None:
        """Write the pod's status if it changed; returns it (None: the pod is gone)."""
        written = self._written.get(rec.uid)
        if written is not None and int(pod.metadata.resource_version or 0) >= written[0]:
            # The cache has caught up with our write: what it kept (a whole Pod) is no longer needed.
            del self._written[rec.uid]
            written = None
        # The newest stored version: our own last write while the cache has not caught up with
        # it. The status is computed on it, so what it carries over (startTime, the conditions'
        # lastTransitionTime) is what is stored, not an older copy's: computed on the cache's
        # older pod, a third write a pod started only moved those timestamps back and forth.
        latest = written[2] if written is not None else pod
        status = self.status_of(latest, rec)
        self.note_phase(rec.uid, status.phase, pod=pod, adopted=rec.adopted)
        if same_status(status, latest.status):
            return status
        base = latest   # newer than the cache: saves a conflict
        for _ in range(CONFLICT_ATTEMPTS):
            obj = types_pb2.Pod()
            obj.CopyFrom(base)
            obj.status.CopyFrom(status)
            try:
                stored = await self.client.update_status(obj)
            except Conflict:
                try:
                    base = await self.client.get("Pod", rec.name, rec.namespace)
                except NotFound:
                    return None
                if base.metadata.uid != rec.uid:
                    return None
                continue
            except NotFound:
                return None
            self._written[rec.uid] = (int(stored.metadata.resource_version or 0), status, stored)
            return status
        raise ApiError(f"pod {rec.namespace}/{rec.name}: status update kept conflicting")

    def note_phase(self, uid: str, phase: str, *, pod: types_pb2.Pod | None = None, adopted: bool = True) -> None:
        before = self._phases.get(uid)
        self._phases[uid] = phase
        if phase == "Running" and before != "Running" and not adopted and pod is not None \
                and pod.status.phase != "Running" and pod.metadata.HasField("creation_timestamp"):
            created = pod.metadata.creation_timestamp.ToDatetime().timestamp()
            latency = self.clock.now().timestamp() - created
            self.metrics.pod_start_latency.labels(node=self.node_name).observe(max(0.0, latency))
        if before != phase:
            self.metrics.set_pod_phases(list(self._phases.values()))

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        if self._phases.pop(uid, None) is not None:
            self.metrics.set_pod_phases(list(self._phases.values()))
