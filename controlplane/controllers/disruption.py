"""The disruption controller: keeps each PodDisruptionBudget's status - how
many of its pods are healthy, how many must be, and so how many disruptions
(evictions) are allowed now - as Kubernetes' pkg/controller/disruption does.
The eviction subresource (controlplane/api/eviction.py) spends what this
controller grants.

    reconcile(pdb) -> the namespace's pods its selector selects
      -> expected pods and desired healthy:
           minAvailable N        desired N, expected = the pods selected
           minAvailable P%       expected = the sum of the pods' controllers'
           maxUnavailable N|P%   scales (a ReplicaSet's replicas, or its
                                 Deployment's); desired = P% of it rounded up,
                                 or expected - maxUnavailable (P% rounded up)
      -> disruptedPods: evicted pods not yet seen going are kept (and counted
         unhealthy) until they go or 2 minutes pass
      -> current healthy = Ready pods not being deleted nor just evicted
      -> disruptionsAllowed = current - desired (0 when negative or nothing expected),
         condition DisruptionAllowed True/SufficientPods or False/InsufficientPods
A pod with no controller, or one whose controller has no scale (a Job, a
DaemonSet), makes a percentage or maxUnavailable budget fail safe: no
disruption allowed, DisruptionAllowed False/SyncFailed and a Warning Event
(NoControllerRef / NoControllers), as Kubernetes does.

Pods, ReplicaSets and Deployments wake the budgets of their namespace that may
care; the clock is injected for tests.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from google.protobuf.message import Message

from controlplane.events import EventRecorder
from skiff.api import intstr, labelselector, meta
from skiff.client import ApiClient, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of

log = logging.getLogger(__name__)

DELETION_TIMEOUT = 120.0   # Kubernetes' DeletionTimeout: how long an evicted pod may take to start going


class BudgetError(Exception):
    """The budget's numbers cannot be worked out; `reason` is the Warning Event's."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_ready(pod: Message) -> bool:
    cond = meta.get_condition(pod.status.conditions, "Ready")
    return cond is not None and cond.status == "True"


def expected_and_desired(spec: Message, pods: list[Message],
                         scale_of: Callable[[Message], tuple[str, int]]) -> tuple[int, int]:
    """(expected pods, desired healthy) for a budget over `pods` (pure).
    `scale_of(pod)` gives (the uid of the pod's scaled controller, its replicas)
    or raises BudgetError."""
    if spec.HasField("min_available") and not spec.min_available.endswith("%"):
        return len(pods), int(spec.min_available)
    scales: dict[str, int] = {}
    for pod in pods:
        uid, replicas = scale_of(pod)
        scales[uid] = replicas
    expected = sum(scales.values())
    if spec.HasField("max_unavailable"):
        unavailable = intstr.scaled(spec.max_unavailable, expected, round_up=True)
        return expected, max(expected - unavailable, 0)
    return expected, intstr.scaled(spec.min_available, expected, round_up=True)


def kept_disruptions(status: Message, pods: list[Message], now: float) -> tuple[dict[str, float], float | None]:
    """The disruptedPods entries still standing (name -> eviction time) and when
    to look again (None: no entry to expire). An entry goes when its pod is
    gone or being deleted, or DELETION_TIMEOUT after the eviction."""
    by_name = {p.metadata.name: p for p in pods}
    kept: dict[str, float] = {}
    recheck: float | None = None
    for name, ts in status.disrupted_pods.items():
        pod = by_name.get(name)
        if pod is None or pod.metadata.HasField("deletion_timestamp"):
            continue
        expires = meta.seconds(ts) + DELETION_TIMEOUT
        if expires < now:
            log.info("pod %s/%s was expected to be deleted at %s but it wasn't", pod.metadata.namespace, name,
                     expires)
            continue
        kept[name] = meta.seconds(ts)
        recheck = expires - now if recheck is None else min(recheck, expires - now)
    return kept, recheck


def count_healthy(pods: list[Message], disrupted: dict[str, float]) -> int:
    return sum(1 for p in pods if p.metadata.name not in disrupted
               and not p.metadata.HasField("deletion_timestamp") and is_ready(p))


def set_allowed_condition(status: Message, *, generation: int, now: float, failure: str = "") -> None:
    """DisruptionAllowed as Kubernetes' UpdateDisruptionAllowedCondition (SyncFailed on a failure)."""
    if failure:
        status_, reason, message = "False", "SyncFailed", failure
    elif status.disruptions_allowed > 0:
        status_, reason, message = "True", "SufficientPods", ""
    else:
        status_, reason, message = "False", "InsufficientPods", ""
    meta.set_condition(status.conditions, type_="DisruptionAllowed", status=status_, reason=reason,
                       message=message, now=meta.timestamp(now))
    meta.get_condition(status.conditions, "DisruptionAllowed").observed_generation = generation


class DisruptionController(Controller):
    name = "disruption"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics)
        self.client = client
        self.clock = clock
        self.budgets = self.watch(factory.informer("PodDisruptionBudget"))
        self.pods = self.uses(factory.informer("Pod"))
        self.replica_sets = self.uses(factory.informer("ReplicaSet"))
        self.deployments = self.uses(factory.informer("Deployment"))
        self.pods.add_event_handler(EventHandler(on_add=self._pod_changed, on_update=self._pod_changed,
                                                 on_delete=self._pod_changed))
        for scaled in (self.replica_sets, self.deployments):   # a new scale changes expected pods
            scaled.add_event_handler(EventHandler(on_add=self._scale_changed, on_update=self._scale_changed,
                                                  on_delete=self._scale_changed))

    def _pod_changed(self, key: Key, *pods: Message) -> None:
        for budget in self.budgets.lister.list(key[0]):
            if any(labelselector.matches(budget.spec.selector, p.metadata.labels) for p in pods):
                self.enqueue(key_of(budget))

    def _scale_changed(self, key: Key, *objs: Message) -> None:
        for budget in self.budgets.lister.list(key[0]):
            self.enqueue(key_of(budget))

    def _scale_of(self, pod: Message) -> tuple[str, int]:
        """(uid, replicas) of the controller whose scale counts for the pod:
        its ReplicaSet, or that ReplicaSet's Deployment."""
        ref = next((r for r in pod.metadata.owner_references if r.controller), None)
        if ref is None:
            raise BudgetError(f'found no controller ref for pod "{pod.metadata.name}"', reason="NoControllerRef")
        if ref.kind == "ReplicaSet":
            rs = self.replica_sets.get((pod.metadata.namespace, ref.name))
            if rs is not None and rs.metadata.uid == ref.uid:
                owner = next((r for r in rs.metadata.owner_references if r.controller), None)
                if owner is None:
                    return rs.metadata.uid, rs.spec.replicas
                if owner.kind == "Deployment":
                    d = self.deployments.get((pod.metadata.namespace, owner.name))
                    if d is not None and d.metadata.uid == owner.uid:
                        return d.metadata.uid, d.spec.replicas
        raise BudgetError(f'found no controllers for pod "{pod.metadata.name}"', reason="NoControllers")

    async def reconcile(self, key: Key) -> float | None:
        budget = self.budgets.get(key)
        if budget is None or budget.metadata.HasField("deletion_timestamp"):
            return None
        now = self.clock()
        pods = [p for p in self.pods.lister.list(key[0])
                if labelselector.matches(budget.spec.selector, p.metadata.labels)]
        status = meta.copy(budget.status)
        status.observed_generation = budget.metadata.generation
        recheck: float | None = None
        try:
            expected, desired = expected_and_desired(budget.spec, pods, self._scale_of)
        except BudgetError as exc:
            before = meta.get_condition(budget.status.conditions, "DisruptionAllowed")
            if self.recorder is not None and (before is None or before.message != str(exc)):   # once, not per pod event
                await self.recorder.record(budget, type_="Warning", reason=exc.reason, message=str(exc))
            status.disruptions_allowed = 0
            set_allowed_condition(status, generation=budget.metadata.generation, now=now, failure=str(exc))
        else:
            disrupted, recheck = kept_disruptions(budget.status, pods, now)
            current = count_healthy(pods, disrupted)
            status.current_healthy, status.desired_healthy, status.expected_pods = current, desired, expected
            status.disruptions_allowed = current - desired if expected > 0 and current > desired else 0
            status.disrupted_pods.clear()
            for name, at in disrupted.items():
                status.disrupted_pods[name].CopyFrom(meta.timestamp(at))
            set_allowed_condition(status, generation=budget.metadata.generation, now=now)
        if status != budget.status:
            updated = meta.copy(budget)
            updated.status.CopyFrom(status)
            try:
                # At the cached resourceVersion: an eviction that spent a disruption meanwhile makes
                # this a Conflict, retried with back-off from the newer status.
                await self.client.update_status(updated)
            except NotFound:
                return None
        return recheck
