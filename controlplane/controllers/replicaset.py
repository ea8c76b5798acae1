"""The ReplicaSet controller: keeps spec.replicas active pods matching each
ReplicaSet's selector (Kubernetes' `replica_set.go`).

    pod or ReplicaSet change ─► enqueue(rs key) ─► reconcile:
        claim      adopt orphans the selector matches, release pods it no longer matches
        manage     too few: create from the template in slow-start batches (1, 2, 4, ...)
                   too many: delete in `deletion_order` (unscheduled, pending, not ready, ...)
        status     replicas, fullyLabeled, ready, available (minReadySeconds), ReplicaFailure

Pods it creates carry a controller ownerReference to the ReplicaSet, so two
ReplicaSets with overlapping selectors never fight over a pod (ownership.py). `Expectations` keep a reconcile from
sizing again before the informer has seen the pods it created or deleted.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from google.protobuf.message import Message

from controlplane.controllers import ownership, replicas
from controlplane.controllers.ownership import controller_ref
from controlplane.events import EventRecorder
from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import labelselector, meta
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of
from skiff.controller.lister import OWNER_INDEX

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # at most this many creations or deletions per reconcile, as Kubernetes


def pod_from_template(rs: apps_pb2.ReplicaSet) -> types_pb2.Pod:
    template = rs.spec.template
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.namespace = rs.metadata.namespace
    pod.metadata.generate_name = f"{rs.metadata.name}-"
    pod.metadata.labels.update(template.metadata.labels)
    pod.metadata.annotations.update(template.metadata.annotations)
    pod.metadata.owner_references.append(ownership.owner_reference(rs))
    pod.spec.CopyFrom(template.spec)
    return pod


def calculate_status(rs: apps_pb2.ReplicaSet, pods: list[types_pb2.Pod], error: Exception | None,
                     scaling_up: bool, now: float) -> apps_pb2.ReplicaSetStatus:
    """The status Kubernetes reports for `pods` (the ReplicaSet's active pods)."""
    status = apps_pb2.ReplicaSetStatus()
    status.CopyFrom(rs.status)
    template_labels = dict(rs.spec.template.metadata.labels)
    status.replicas = len(pods)
    status.fully_labeled_replicas = sum(1 for p in pods
                                        if all(p.metadata.labels.get(k) == v for k, v in template_labels.items()))
    status.ready_replicas = sum(1 for p in pods if replicas.is_ready(p))
    status.available_replicas = sum(1 for p in pods if replicas.is_available(p, rs.spec.min_ready_seconds, now))
    status.observed_generation = rs.metadata.generation
    failure = meta.get_condition(status.conditions, "ReplicaFailure")
    if error is not None and failure is None:
        meta.set_condition(status.conditions, type_="ReplicaFailure", status="True",
                           reason="FailedCreate" if scaling_up else "FailedDelete", message=str(error),
                           now=meta.timestamp(now))
    elif error is None and failure is not None:
        meta.remove_condition(status.conditions, "ReplicaFailure")
    return status


class ReplicaSetController(ownership.OwnedPodEvents, Controller):
    name = "replicaset"
    owner_kind = "ReplicaSet"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time,
                 burst: int = BURST_REPLICAS, workers: int = 2) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics, workers=workers)
        self.client = client
        self.clock = clock
        self.burst = burst
        self.expectations = replicas.Expectations()
        self.sets = self.owners = self.watch(factory.informer("ReplicaSet"))
        self.pods = self.uses(factory.informer("Pod"))
        self.pods.add_event_handler(EventHandler(on_add=self._pod_added, on_update=self._pod_updated,
                                                 on_delete=self._pod_deleted))

    # ------------------------------------------------------------ pod events

    def _enqueue_matching(self, pod: Message) -> None:
        """An orphan: every ReplicaSet that may adopt it."""
        for rs in self.sets.lister.list(pod.metadata.namespace):
            if not labelselector.is_empty(rs.spec.selector) and \
                    labelselector.matches(rs.spec.selector, pod.metadata.labels):
                self.enqueue(key_of(rs))

    def _pod_added(self, key: Key, pod: Message) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._pod_deleted(key, pod)
            return
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.lower_adds(owner)
            self.enqueue(owner)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, key: Key, old: Message, new: Message) -> None:
        if new.metadata.HasField("deletion_timestamp") and not old.metadata.HasField("deletion_timestamp"):
            self._pod_deleted(key, new)  # a graceful delete: the pod no longer counts
        old_owner, new_owner = self._owner_key(old), self._owner_key(new)
        if old_owner is not None and old_owner != new_owner:
            self.enqueue(old_owner)
        if new_owner is not None:
            self.enqueue(new_owner)
        elif controller_ref(new) is None and (old.metadata.labels != new.metadata.labels
                                             or controller_ref(old) is not None):
            self._enqueue_matching(new)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        active = [p for p in self.pods.lister.list(rs.metadata.namespace) if replicas.is_active(p)]
        pods = await ownership.claim(self.client, rs, active, labelselector.to_selector(rs.spec.selector).matches)
        error: Exception | None = None
        scaling_up = len(pods) < rs.spec.replicas
        if needs_sync and not rs.metadata.HasField("deletion_timestamp"):
            error = await self._manage(key, rs, pods)
        now = self.clock()
        status = calculate_status(rs, pods, error, scaling_up, now)
        if status != rs.status:
            await self._write_status(rs, status)
        if error is not None:
            raise error
        waits = [w for p in pods if (w := replicas.available_in(p, rs.spec.min_ready_seconds, now)) is not None]
        return min(waits) if waits else None

    async def _write_status(self, rs: apps_pb2.ReplicaSet, status: apps_pb2.ReplicaSetStatus) -> None:
        """Replace the status; on a conflict (the spec moved meanwhile) once
        more on the fresh object, as the status is ours alone."""
        updated = meta.copy(rs)
        updated.status.CopyFrom(status)
        try:
            await self.client.update_status(updated)
        except Conflict:
            fresh = await self.client.get("ReplicaSet", rs.metadata.name, rs.metadata.namespace)
            if fresh.metadata.uid != rs.metadata.uid:
                return
            fresh.status.CopyFrom(status)
            await self.client.update_status(fresh)
        except NotFound:
            pass

    # ------------------------------------------------------------ manage

    async def _manage(self, key: Key, rs: apps_pb2.ReplicaSet, pods: list[types_pb2.Pod]) -> Exception | None:
        diff = len(pods) - rs.spec.replicas
        if diff < 0:
            count = min(-diff, self.burst)
            self.expectations.expect(key, adds=count)

            async def create() -> None:
                try:
                    pod = await self.client.create(pod_from_template(rs))
                except ApiError as exc:
                    await self._event(rs, "Warning", "FailedCreate", f"Error creating: {exc}")
                    raise
                await self._event(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod.metadata.name}")

            created, error = await replicas.slow_start(count, create)
            if created < count:
                self.expectations.lower_adds(key, count - created)
            return error
        if diff > 0:
            count = min(diff, self.burst)
            victims = replicas.deletion_order(pods, self._related_pods(rs, pods))[:count]
            self.expectations.expect(key, delete_uids=[p.metadata.uid for p in victims])
            results = await asyncio.gather(*(self._delete(key, rs, p) for p in victims), return_exceptions=True)
            errors = [r for r in results if isinstance(r, Exception)]
            return errors[0] if errors else None
        return None

    async def _delete(self, key: Key, rs: apps_pb2.ReplicaSet, pod: types_pb2.Pod) -> None:
        try:
            await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                     precondition_uid=pod.metadata.uid)
        except NotFound:
            self.expectations.deletion_seen(key, pod.metadata.uid)
            return
        except ApiError as exc:
            self.expectations.deletion_seen(key, pod.metadata.uid)
            await self._event(rs, "Warning", "FailedDelete", f"Error deleting: {exc}")
            raise
        await self._event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    def _related_pods(self, rs: apps_pb2.ReplicaSet, pods: list[types_pb2.Pod]) -> list[types_pb2.Pod]:
        """The active pods of every ReplicaSet under rs's own controller (a
        Deployment's old and new ReplicaSets), for the doubled-up rank."""
        owner = controller_ref(rs)
        if owner is None:
            return pods
        related: list[types_pb2.Pod] = []
        for sibling in self.sets.lister.by_index(OWNER_INDEX, owner.uid):
            related += [p for p in self.pods.lister.by_index(OWNER_INDEX, sibling.metadata.uid)
                        if replicas.is_active(p)]
        return related or pods

    async def _event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, type_=type_, reason=reason, message=message)
