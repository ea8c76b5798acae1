"""The DaemonSet controller: one pod of the template on every eligible node
(Kubernetes' `daemon_controller.go` and `update.go`).

    DaemonSet, node or pod changes ─► enqueue(daemonset) ─► reconcile:
        eligible nodes: the template's nodeSelector and required node affinity
                        match (skiff/api/nodeaffinity.py), the node is not being deleted
        claim pods (ownership.py)
        an eligible node without a pod ─► create one there (spec.nodeName set: the
                                          controller places its pods, as before
                                          Kubernetes 1.12)
        a node with two ─► delete the extra; a pod on a node that is gone or no
                           longer eligible, or a failed pod ─► delete it
        RollingUpdate: pods of an older template (`controller-revision-hash`)
                       are deleted, unavailable ones first, while at most
                       maxUnavailable nodes lack an available pod; the next
                       reconcile creates their successors. OnDelete: never.
        status: desired, current, misscheduled, ready, updated, available, unavailable
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from google.protobuf.message import Message

from controlplane.controllers import ownership, replicas
from controlplane.events import EventRecorder
from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import intstr, labelselector, meta, nodeaffinity, rollout
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of

log = logging.getLogger(__name__)

REVISION_HASH = "controller-revision-hash"


def should_run(ds: apps_pb2.DaemonSet, node: types_pb2.Node) -> bool:
    return not node.metadata.HasField("deletion_timestamp") and nodeaffinity.pod_fits_node(ds.spec.template.spec,
                                                                                           node)


def pod_for_node(ds: apps_pb2.DaemonSet, node_name: str, template_hash: str) -> types_pb2.Pod:
    template = ds.spec.template
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.namespace = ds.metadata.namespace
    pod.metadata.generate_name = f"{ds.metadata.name}-"
    pod.metadata.labels.update(template.metadata.labels)
    pod.metadata.labels[REVISION_HASH] = template_hash
    pod.metadata.annotations.update(template.metadata.annotations)
    pod.metadata.owner_references.append(ownership.owner_reference(ds))
    pod.spec.CopyFrom(template.spec)
    pod.spec.node_name = node_name
    return pod


class DaemonSetController(ownership.OwnedPodEvents, Controller):
    name = "daemonset"
    owner_kind = "DaemonSet"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time,
                 workers: int = 2) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics, workers=workers)
        self.client = client
        self.clock = clock
        self.expectations = replicas.Expectations()
        self.sets = self.owners = self.watch(factory.informer("DaemonSet"))
        self.nodes = self.uses(factory.informer("Node"))
        self.nodes.add_event_handler(EventHandler(
            on_add=lambda k, n: self._enqueue_all(),
            on_update=lambda k, old, new: self._enqueue_all() if _node_view(old) != _node_view(new) else None,
            on_delete=lambda k, n: self._enqueue_all()))
        self.pods = self.uses(factory.informer("Pod"))
        self.pods.add_event_handler(EventHandler(on_add=self._pod_added, on_update=self._pod_updated,
                                                 on_delete=self._pod_deleted))

    def _enqueue_all(self) -> None:
        for ds in self.sets.list():
            self.enqueue(key_of(ds))

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        cached = self.sets.get(key)
        if cached is None:
            self.expectations.forget(key)
            return None
        ds = meta.copy(cached)
        now = self.clock()
        template_hash = rollout.pod_template_hash(ds.spec.template)
        pods = await ownership.claim(self.client, ds, self.pods.lister.list(ds.metadata.namespace),
                                     labelselector.to_selector(ds.spec.selector).matches)
        active = [p for p in pods if replicas.is_active(p)]
        failed = [p for p in pods if p.status.phase == "Failed" and not p.metadata.HasField("deletion_timestamp")]
        by_node: dict[str, list[types_pb2.Pod]] = {}
        for p in sorted(active, key=lambda p: meta.seconds(p.metadata.creation_timestamp)):
            by_node.setdefault(p.spec.node_name, []).append(p)
        eligible = sorted(n.metadata.name for n in self.nodes.list() if should_run(ds, n))
        creates: list[str] = []
        deletes: list[types_pb2.Pod] = list(failed)
        for name in eligible:
            on_node = by_node.get(name, [])
            if not on_node:
                creates.append(name)
            elif len(on_node) > 1:  # keep one, of the current template if there is one
                keep = next((p for p in on_node if p.metadata.labels.get(REVISION_HASH) == template_hash), on_node[0])
                deletes += [p for p in on_node if p is not keep]
        wanted = set(eligible)
        for name, on_node in by_node.items():
            if name not in wanted:
                deletes += on_node
        if ds.spec.update_strategy.type != "OnDelete" and not ds.metadata.HasField("deletion_timestamp"):
            deletes += self._rolling_victims(ds, eligible, by_node, template_hash, now, deletes)
        waits: list[float] = []
        if self.expectations.satisfied(key) and not ds.metadata.HasField("deletion_timestamp"):
            await self._act(key, ds, creates, deletes, template_hash)
        status = self._status(ds, eligible, by_node, template_hash, now, waits)
        if status != ds.status:
            ds.status.CopyFrom(status)
            try:
                await self.client.update_status(ds)
            except NotFound:
                return None
        return min(waits) if waits else None

    def _rolling_victims(self, ds: apps_pb2.DaemonSet, eligible: list[str], by_node: dict[str, list],
                         template_hash: str, now: float, already: list[types_pb2.Pod]) -> list[types_pb2.Pod]:
        """Old-template pods to delete now: every unavailable one, then
        available ones while fewer than maxUnavailable nodes lack an available pod."""
        going = {p.metadata.uid for p in already}
        budget = intstr.scaled(ds.spec.update_strategy.rolling_update.max_unavailable or "1", len(eligible),
                               round_up=True)
        unavailable, old_available, victims = 0, [], []
        for name in eligible:
            pods = [p for p in by_node.get(name, []) if p.metadata.uid not in going]
            if not pods:
                unavailable += 1
                continue
            pod = pods[0]
            available = replicas.is_available(pod, ds.spec.min_ready_seconds, now)
            if not available:
                unavailable += 1
            if pod.metadata.labels.get(REVISION_HASH) != template_hash:
                (old_available if available else victims).append(pod)
        for pod in old_available:
            if unavailable >= budget:
                break
            victims.append(pod)
            unavailable += 1
        return victims

    async def _act(self, key: Key, ds: apps_pb2.DaemonSet, creates: list[str], deletes: list[types_pb2.Pod],
                   template_hash: str) -> None:
        if not creates and not deletes:
            return
        self.expectations.expect(key, adds=len(creates), delete_uids=[p.metadata.uid for p in deletes])
        queue = list(creates)

        async def create() -> None:
            node = queue.pop(0)
            try:
                pod = await self.client.create(pod_for_node(ds, node, template_hash))
            except ApiError as exc:
                await self._event(ds, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            await self._event(ds, "Normal", "SuccessfulCreate", f"Created pod: {pod.metadata.name}")

        async def delete(pod: types_pb2.Pod) -> None:
            try:
                await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                         precondition_uid=pod.metadata.uid)
            except (NotFound, Conflict):
                self.expectations.deletion_seen(key, pod.metadata.uid)
                return
            await self._event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

        results = await asyncio.gather(*(delete(p) for p in deletes), return_exceptions=True)
        created, error = await replicas.slow_start(len(creates), create)
        if created < len(creates):
            self.expectations.lower_adds(key, len(creates) - created)
        errors = [r for r in results if isinstance(r, Exception)] + ([error] if error else [])
        if errors:
            raise errors[0]

    def _status(self, ds: apps_pb2.DaemonSet, eligible: list[str], by_node: dict[str, list], template_hash: str,
                now: float, waits: list[float]) -> apps_pb2.DaemonSetStatus:
        status = apps_pb2.DaemonSetStatus()
        status.CopyFrom(ds.status)
        wanted = set(eligible)
        first = {name: pods[0] for name, pods in by_node.items() if pods and name in wanted}
        status.desired_number_scheduled = len(eligible)
        status.current_number_scheduled = len(first)
        status.number_misscheduled = sum(1 for name, pods in by_node.items() if pods and name not in wanted)
        status.number_ready = sum(1 for p in first.values() if replicas.is_ready(p))
        status.number_available = sum(1 for p in first.values()
                                      if replicas.is_available(p, ds.spec.min_ready_seconds, now))
        status.updated_number_scheduled = sum(1 for pods in (by_node.get(n, []) for n in eligible)
                                              if any(p.metadata.labels.get(REVISION_HASH) == template_hash
                                                     for p in pods))
        status.number_unavailable = status.desired_number_scheduled - status.number_available
        status.observed_generation = ds.metadata.generation
        waits += [w for p in first.values() if (w := replicas.available_in(p, ds.spec.min_ready_seconds, now))]
        return status

    async def _event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, type_=type_, reason=reason, message=message)


def _node_view(node: Message) -> tuple:
    """What a DaemonSet's placement depends on (heartbeats alone do not wake every DaemonSet)."""
    return (dict(node.metadata.labels), node.metadata.HasField("deletion_timestamp"), node.spec.unschedulable)
